"""One place that opens DuckDB connections over the workspace's Parquet files.

Data is stored as Parquet files (one per ingested file, one per region's features), and
each connection is a cursor on an in-memory DuckDB database of its process whose views
read those files (kept while the ingested files are the same: ``views_database``). There
is no shared database file, so parallel runs never fight over DuckDB's single-writer lock
(see ../shared/NOTES.md), and the same layout works on object storage.

Views (created only when their files exist):

``raw_<source>``   every ingested file of a source, with ``_sha``, ``_ingested_at`` and
                   ``_seq`` (the file's position in ingestion order, 0 = oldest)
``sales``          sales rows; where files overlap, the most recently ingested file wins
``actuals``        ground truth delivered separately from sales (same rule)
``ground_truth``   the observed target of every (store, item, date): sales and actuals rows,
                   an actuals row winning over a sales row of the same key, and otherwise
                   the most recently ingested file (``_source`` says which kind it came from)
``future``         the known future calendar (same rule)
``stores``         store master with ``region`` and ``region_key``
``regions``        ``region`` display name -> ``region_key``
``weather``        weather with ``region_key``
``events``         events with ``region_key`` ('' for national events)
``features``       every region's conditioned feature table

Table macros that filter one region before ranking (cheaper than the views above):
``sales_of_region(r)``, ``future_of_region(r)``, ``actuals_of_region(r)`` and
``ground_truth_of_region(r)`` (the rule of ``ground_truth``; what features train on and
what realized performance scores forecasts against).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING

import duckdb

from mlops_assets.naming import region_keys
from mlops_assets.spec import KEY_COLUMNS, DatasetSpec
from mlops_assets.storage.manifest import Manifest
from mlops_assets.validation import quote_ident
from mlops_assets.workspace import FEATURES_FOLDER, Workspace

if TYPE_CHECKING:
    import pandas as pd


def ingested_files(ws: Workspace, source: str) -> pd.DataFrame:
    """sha, path, ingestion time and order (``seq``) of each ingested file, oldest first.

    The manifest says what is ingested and in which order (a correction ingested after
    the file it corrects wins); a raw file without a record (its run died between writing
    it and recording it) is not part of the data until it is ingested again.
    """
    import pandas as pd

    data = ws.data
    rows = [
        {"sha": sha, "path": data.location(ws.raw_key(source, sha)), "ingested_at": at}
        for sha, at, _ in Manifest.for_workspace(ws).ingested(source)
    ]
    frame = pd.DataFrame(rows, columns=["sha", "path", "ingested_at"])
    frame["seq"] = range(len(frame))
    return frame


@contextmanager
def connect(
    ws: Workspace, spec: DatasetSpec, *, features: bool = False, shared: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the workspace views defined. ``features``: also the
    ``features`` view over every region's feature table, for the readers that query it:
    DuckDB reads every table's footer to define it (0.09 s of a 0.17 s connect at 300
    regions), a cost that grows with the regions on every connect that would not use it.

    The connection is a cursor on an in-memory database of this process that holds the
    views of the workspace's ingested files as they are now (``views_database``): defining
    them is most of a connect's cost, and a run connects several times. The ``features``
    view is the cursor's own (feature tables change within a run).

    ``shared=False``: a database of its own instead, closed when the block ends, for work
    whose memory must go back to the system then (building features): DuckDB's allocator
    keeps what a database's queries used until that database closes, about 1 GB after
    a 1M-row region's features (the process then carried it through the run's later
    regions and assets)."""
    files = {name: ingested_files(ws, name) for name in spec.sources}
    own = None if shared else _new_views_database(ws, spec, files)
    con = (own or views_database(ws, spec, files)).cursor()
    try:
        ws.data.attach(con)  # the feature tables may be on object storage
        if features:
            define_features_view(con, ws)
        yield con
    finally:
        con.close()
        if own is not None:
            own.close()


# the databases of the workspace states this process connected to last (a run, a sensor
# or a test suite moves between a few), newest last
VIEWS_DATABASES_KEPT = 4
_views_databases: OrderedDict[str, duckdb.DuckDBPyConnection] = OrderedDict()
_views_databases_lock = threading.Lock()


def views_database(
    ws: Workspace, spec: DatasetSpec, files: dict[str, pd.DataFrame]
) -> duckdb.DuckDBPyConnection:
    """An in-memory database with the workspace views over ``files`` (source -> its
    ``ingested_files``), shared by this process's connects while the ingested files and
    the spec are the same (connections to one database share its views and macros).

    Raw files are written once under their content hash and the manifest only grows, so
    the same list of ingested files (paths, hashes and order) is the same data; any other
    list, or another spec, gets a database of its own."""
    digest = hashlib.sha256(spec.model_dump_json().encode())
    for name, frame in files.items():
        digest.update(f"\0{name}\0".encode())
        for row in frame[["sha", "path", "ingested_at", "seq"]].itertuples(index=False):
            digest.update("\0".join(map(str, row)).encode())
    key = f"{os.getpid()}:{digest.hexdigest()}"  # a forked child never uses its parent's
    with _views_databases_lock:
        database = _views_databases.get(key)
        if database is None:
            database = _new_views_database(ws, spec, files)
            _views_databases[key] = database
        _views_databases.move_to_end(key)
        while len(_views_databases) > VIEWS_DATABASES_KEPT:
            # dropped, not closed: a cursor still open on it keeps the database alive
            _views_databases.popitem(last=False)
    return database


def _new_views_database(
    ws: Workspace, spec: DatasetSpec, files: dict[str, pd.DataFrame]
) -> duckdb.DuckDBPyConnection:
    """An in-memory database with the workspace views over ``files`` (closed if they fail)."""
    database = duckdb.connect()
    try:
        ws.data.attach(database)
        define_views(database, spec, files)
    except BaseException:
        database.close()
        raise
    return database


def define_views(
    con: duckdb.DuckDBPyConnection,
    spec: DatasetSpec,
    ingested: dict[str, pd.DataFrame],
) -> None:
    """The workspace views (see the module's docstring) on ``con``, over ``ingested``
    (source -> its ``ingested_files``). Their lookup tables are tables of the database, so
    every connection to it sees them."""
    import pandas as pd

    present: set[str] = set()
    for name, src in spec.sources.items():
        files = ingested[name]
        if files.empty:
            continue
        present.add(src.kind)
        table = f"_files_{name}"
        _create_table(con, table, files)
        paths = sql_literals(files["path"])
        con.execute(
            f"CREATE VIEW raw_{name} AS SELECT r.*, f.sha AS _sha, f.ingested_at AS _ingested_at, "
            f"f.seq AS _seq FROM read_parquet([{paths}], filename=true, union_by_name=true) r "
            f"JOIN {table} f ON r.filename = f.path"
        )
        key = ", ".join(quote_ident(c) for c in src.key)
        con.execute(
            f"CREATE VIEW {src.kind}_latest AS SELECT * EXCLUDE (filename, _seq) FROM raw_{name} "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _seq DESC) = 1"
        )
    if "stores" not in present:
        return

    stores_cols = spec.source("stores").columns
    if "region" in stores_cols:
        con.execute("CREATE VIEW _store_region AS SELECT store, region FROM stores_latest")
    elif "store_regions" in present:
        con.execute("CREATE VIEW _store_region AS SELECT store, region FROM store_regions_latest")
    else:
        con.execute(
            "CREATE VIEW _store_region AS SELECT store, NULL::VARCHAR AS region "
            "FROM stores_latest WHERE false"
        )
    names = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT region FROM _store_region WHERE region IS NOT NULL"
        ).fetchall()
    ]
    # a region name arriving from the store master was validated on landing; two names
    # mapping onto one key across files is caught here
    mapping = pd.DataFrame(
        sorted(region_keys(names).items()), columns=["region", "region_key"]
    ).astype(str)
    _create_table(con, "_regions", mapping)
    con.execute("CREATE VIEW regions AS SELECT * FROM _regions")
    drop = ["_sha", "_ingested_at"] + (["region"] if "region" in stores_cols else [])
    con.execute(
        f"CREATE VIEW stores AS SELECT s.* EXCLUDE ({', '.join(drop)}), sr.region, g.region_key "
        "FROM stores_latest s LEFT JOIN _store_region sr USING (store) "
        "LEFT JOIN regions g ON g.region = sr.region"
    )
    for kind in ("sales", "future", "actuals"):
        if kind in present:
            con.execute(
                f"CREATE VIEW {kind} AS SELECT x.*, s.region_key FROM {kind}_latest x "
                "JOIN stores s USING (store)"
            )
            # one region's rows, filtered before the latest-file-wins window so a region's
            # features never rank the whole table (the view above would)
            src = spec.source(kind)
            key = ", ".join(quote_ident(c) for c in src.key)
            con.execute(
                f"CREATE MACRO {kind}_of_region(r) AS TABLE "
                f"SELECT x.* EXCLUDE (filename, _seq), r AS region_key "
                f"FROM raw_{spec.source_name(kind)} x "
                f"WHERE x.store IN (SELECT store FROM stores WHERE region_key = r) "
                f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _seq DESC) = 1"
            )
    truth = [kind for kind in ("sales", "actuals") if kind in present]
    if truth:
        _define_ground_truth(con, spec, truth)
    if "weather" in present:
        con.execute(
            "CREATE VIEW weather AS SELECT w.* EXCLUDE (region), g.region_key "
            "FROM weather_latest w JOIN regions g USING (region)"
        )
    if "events" in present:
        con.execute(
            "CREATE VIEW events AS SELECT e.* EXCLUDE (region), coalesce(g.region_key, '') "
            "AS region_key FROM events_latest e LEFT JOIN regions g USING (region) "
            "WHERE e.region = '' OR g.region_key IS NOT NULL"
        )


def _create_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    con.register("_frame", frame)
    try:
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _frame")
    finally:
        con.unregister("_frame")


def define_features_view(con: duckdb.DuckDBPyConnection, ws: Workspace) -> None:
    """``features``: every region's feature table (none before the first is written), a
    temporary view: the connection's own."""
    data = ws.data
    feature_files = [data.location(k) for k in data.keys(FEATURES_FOLDER)]
    if feature_files:
        paths = sql_literals(feature_files)
        con.execute(
            "CREATE TEMP VIEW features AS "
            f"SELECT * FROM read_parquet([{paths}], union_by_name=true)"
        )


def _define_ground_truth(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, kinds: list[str]
) -> None:
    """``ground_truth`` and ``ground_truth_of_region(r)``: why one rule for both is that
    actuals are the same observations as sales, only delivered later or separately, so a
    correction in an actuals file must win over the sales feed wherever it is read."""
    key = ", ".join(quote_ident(c) for c in KEY_COLUMNS["sales"])
    rank = {"sales": 0, "actuals": 1}  # higher wins, then the later file

    def union(where: str) -> str:
        return " UNION ALL BY NAME ".join(
            f"SELECT x.* EXCLUDE (filename), {rank[k]} AS _rank, '{k}' AS _source "
            f"FROM raw_{spec.source_name(k)} x {where}"
            for k in kinds
        )

    latest = f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _rank DESC, _seq DESC) = 1"
    con.execute(
        f"CREATE VIEW ground_truth AS SELECT g.* EXCLUDE (_rank, _seq), s.region_key "
        f"FROM ({union('')}) g JOIN stores s USING (store) {latest}"
    )
    in_region = "WHERE x.store IN (SELECT store FROM stores WHERE region_key = r)"
    con.execute(
        f"CREATE MACRO ground_truth_of_region(r) AS TABLE "
        f"SELECT g.* EXCLUDE (_rank, _seq), r AS region_key FROM ({union(in_region)}) g {latest}"
    )


def regions_with_sales(ws: Workspace, spec: DatasetSpec) -> dict[str, str]:
    """region_key -> display name for every region that has at least one sales row."""
    with connect(ws, spec) as con:
        if not has_view(con, "sales"):
            return {}
        # distinct stores of the raw files: no latest-file-wins ranking of every row
        rows = con.execute(
            f"SELECT DISTINCT st.region_key, st.region FROM "
            f"(SELECT DISTINCT store FROM raw_{spec.source_name('sales')}) x "
            f"JOIN stores st USING (store) WHERE st.region_key IS NOT NULL ORDER BY 1"
        ).fetchall()
    return dict(rows)


def region_display_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """region_key -> display name from the store master, on a connection with the workspace
    views (no scan of the sales, unlike ``regions_with_sales``)."""
    if not has_view(con, "regions"):
        return {}
    return dict(con.execute("SELECT region_key, region FROM regions").fetchall())


def last_sales_date(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> date | None:
    """The latest date with ground truth (sales or actuals) in the dataset (None before
    any sales are ingested)."""
    if not has_view(con, "sales"):
        return None
    sources = [spec.source_name(k) for k in ("sales", "actuals") if has_view(con, k)]
    return con.execute(
        "SELECT max(d) FROM ("
        + " UNION ALL ".join(f"SELECT max(date) AS d FROM raw_{s}" for s in sources)
        + ")"
    ).fetchone()[0]


def region_level_inputs(ws: Workspace, spec: DatasetSpec) -> pd.DataFrame | None:
    """Every region's region-level inputs (the weather source's numeric features) by day,
    columns ``date``, ``region_key`` and those features: the fleet a region's weather is
    compared with. None without a weather source or data."""

    def query(columns: list[str]) -> str:
        return f"SELECT date, region_key, {', '.join(quote_ident(c) for c in columns)} FROM weather"

    return _weather_query(ws, spec, None, query)


def _weather_query(
    ws: Workspace,
    spec: DatasetSpec,
    columns: Sequence[str] | None,
    sql: Callable[[list[str]], str],
    params: dict[str, str] | None = None,
) -> pd.DataFrame | None:
    """The rows of ``sql(columns)`` over the ``weather`` view (``columns``: default every
    numeric weather input); None without a weather source, columns or ingested weather."""
    if not spec.has("weather"):
        return None
    if columns is None:
        columns = spec.source("weather").feature_columns("numeric")
    if not columns:
        return None
    with connect(ws, spec) as con:
        if not has_view(con, "weather"):
            return None
        return con.execute(sql(list(columns)), params).df()


def fleet_gap_query(relation: str, columns: Sequence[str]) -> str:
    """SQL for one region's gap to the fleet (``monitoring.fleet_gap_frame`` says why): a
    row per day the region ``$region`` reports, with its mean of each column that day minus
    the median over all regions of their means that day, NULL where fewer than two regions
    report the column. ``relation`` has ``date``, ``region_key`` and ``columns``."""
    quoted = [quote_ident(c) for c in columns]
    means = ", ".join(f"avg({c}) AS {c}" for c in quoted)
    medians = ", ".join(f"CASE WHEN count({c}) >= 2 THEN median({c}) END AS {c}" for c in quoted)
    gaps = ", ".join(f"d.{c} - f.{c} AS {c}" for c in quoted)
    return (
        f"WITH daily AS (SELECT date, region_key{', ' + means if means else ''} FROM {relation} "
        "GROUP BY date, region_key), "
        f"fleet AS (SELECT date{', ' + medians if medians else ''} FROM daily GROUP BY date) "
        f"SELECT d.date{', ' + gaps if gaps else ''} FROM daily d JOIN fleet f USING (date) "
        "WHERE d.region_key = $region ORDER BY d.date"
    )


def region_fleet_gap(
    ws: Workspace, spec: DatasetSpec, region: str, columns: Sequence[str] | None = None
) -> pd.DataFrame | None:
    """The region's gap to the fleet (``fleet_gap_query``) in the weather ``columns``
    (default: every numeric weather input), computed where the weather is: only the
    region's days come back to Python. Reading every region's weather into pandas for
    each region (``region_level_inputs``) took 0.30 s a region at 300 regions, this 0.19 s
    (DuckDB still scans the fleet's weather for the medians, so a refresh of every region
    still grows with the square of the regions, at a smaller factor). None without
    weather data."""
    return _weather_query(
        ws, spec, columns, lambda names: fleet_gap_query("weather", names), {"region": region}
    )


def has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = $n", {"n": name}
        ).fetchall()[0][0]  # fetchall: duckdb 2 blocks relation queries on an unfinished result
    )


def sql_literals(paths: Iterable[str]) -> str:
    """Paths as SQL string literals (views cannot take bound parameters)."""
    return ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
