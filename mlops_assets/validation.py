"""Validate one landing file against its source spec and normalise it to canonical columns.

All work happens in DuckDB so that files of tens of millions of rows validate without
loading them into pandas. Every column is first read as text, then cast with
``TRY_CAST`` so that a bad value is reported with its row and column instead of
aborting the read. File paths and values are passed to DuckDB as parameters, never
spliced into SQL; column names come from the spec and are quoted.

A file is rejected (``LandingRejected``) when it is unparseable, empty, misses columns,
has values of the wrong type, nulls where none are allowed, dates or values out of
range, conflicting duplicate keys, unknown stores, or unusable region names, and when
its source says ``unknown_columns: quarantine``, columns the spec does not know (by
default they are dropped and reported, see ``ValidatedFile.unknown_columns``). Rows that
are exact copies of another row in the same file are dropped and counted, not rejected:
re-exported files often hold such copies (rossmann-100's train.csv has six).

A rejection's ``message`` is what people read in the CLI and the UI: one short line,
without absolute paths (the file's name at most). What the engine said in full (DuckDB's
errors run over many lines and quote the file's absolute path) is kept in ``details``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mlops_assets.naming import UnsafeNameError, check_display_name, region_keys
from mlops_assets.spec import SourceSpec
from mlops_assets.storage.data_store import StoredTable
from mlops_assets.workspace import atomic_copy_to_parquet

MIN_DATE = "1900-01-01"
MAX_DATE = "2100-12-31"
MAX_EXAMPLES = 5
# canonical columns that normalised rows always carry, with their fill value
_FILLED = {"item": "all", "region": ""}
MESSAGE_CHARS = 300  # longest reason message shown; the full text stays in the details
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/])/[^\s'\"]+")


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line (whitespace collapsed), cut at ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def without_absolute_paths(text: str, path: Path | None = None) -> str:
    """``text`` with ``path`` shown by its name and any other absolute path as
    ``<path>``: reasons are read by people on other machines, tmp dirs mean nothing."""
    if path is not None:
        text = text.replace(str(path), path.name)
    return _ABSOLUTE_PATH.sub("<path>", text)


class LandingRejected(Exception):
    """A landing file cannot be ingested. ``code`` is stable and machine-readable;
    ``message`` is one short line for people (a longer one is cut, and kept whole in
    ``details["full_message"]``)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        short = one_line(message)
        super().__init__(f"{code}: {short}")
        self.code = code
        self.message = short
        self.details = dict(details or {})
        if short != " ".join(message.split()):
            self.details.setdefault("full_message", message)


def _engine_summary(exc: Exception, path: Path) -> str:
    """One human sentence for DuckDB's multi-line read error; its common cases
    (ragged row, not UTF-8, layout not detected, not Parquet) in plain words."""
    text = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    columns = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    original = re.search(r"Original Line: (.*)", text)
    if line and columns:
        found = f"line {line[1]} has {columns[2]} fields where the header has {columns[1]}"
        return found + (f": {one_line(original[1], 80)!r}" if original else "")
    if "Invalid unicode" in text:
        return "it is not UTF-8 text" + (f" (line {line[1]})" if line else "")
    if "sniffing file" in text:
        return (
            "its CSV layout could not be detected (a stray quote, another delimiter, or "
            "not a CSV file)"
        )
    if "magic bytes" in text:
        return "it is not a Parquet file"
    first = text.splitlines()[0] if text else type(exc).__name__
    return without_absolute_paths(first, path)


@dataclass
class ValidatedFile:
    """Outcome of a successful validation; the normalised rows are in ``relation_sql``."""

    rows: int
    exact_duplicates_dropped: int
    ignored_columns: list[str]
    unknown_columns: list[str] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    date_min: str | None = None
    date_max: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "exact_duplicates_dropped": self.exact_duplicates_dropped,
            "ignored_columns": self.ignored_columns,
            "unknown_columns": self.unknown_columns,
            "n_stores": len(self.stores),
            "regions": self.regions,
            "date_min": self.date_min,
            "date_max": self.date_max,
        }


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB (doubling embedded quotes)."""
    return '"' + name.replace('"', '""') + '"'


def _typed_expr(col: str, dtype: str, date_format: str | None) -> str:
    """SQL casting the cleaned text column ``col`` to ``dtype``; NULL where it fails."""
    q = quote_ident(col)
    if dtype == "str":
        return q
    if dtype == "float":
        return f"TRY_CAST({q} AS DOUBLE)"
    if dtype == "int":
        # accept "1" and "1.0" (exported floats), reject "1.5"
        return (
            f"CASE WHEN TRY_CAST({q} AS DOUBLE) = round(TRY_CAST({q} AS DOUBLE)) "
            f"THEN TRY_CAST(TRY_CAST({q} AS DOUBLE) AS BIGINT) END"
        )
    if dtype == "date":
        if date_format:
            fmt = date_format.replace("'", "''")
            return f"CAST(try_strptime({q}, '{fmt}') AS DATE)"
        return f"TRY_CAST({q} AS DATE)"
    raise ValueError(f"unknown dtype {dtype!r}")


def _read_text(con: duckdb.DuckDBPyConnection, path: Path, spec: SourceSpec) -> list[str]:
    """Load the file into temp table ``src`` with every column as text; return its columns."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv", ".txt", ".tsv") and path.stat().st_size == 0:
        # DuckDB reads a 0-byte CSV as one column "column0" (which would be missing_columns)
        raise LandingRejected("empty", f"{path.name} is empty (0 bytes)")
    try:
        if suffix == ".parquet":
            con.execute(
                "CREATE TEMP TABLE src_native AS SELECT * FROM read_parquet($p)", {"p": str(path)}
            )
            cols = [r[0] for r in con.execute("DESCRIBE src_native").fetchall()]
            casts = ", ".join(
                f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}" for c in cols
            )
            con.execute(f"CREATE TEMP TABLE src AS SELECT {casts} FROM src_native")
            con.execute("DROP TABLE src_native")
        elif suffix in (".csv", ".txt", ".tsv"):
            con.execute(
                "CREATE TEMP TABLE src AS SELECT * FROM read_csv($p, all_varchar=true, "
                "header=true, delim=$d, quote='\"', escape='\"', strict_mode=true, "
                "null_padding=false, auto_detect=true)",
                {"p": str(path), "d": spec.delimiter},
            )
        else:
            raise LandingRejected(
                "unsupported_format", f"file type {suffix or '(none)'} is not CSV or Parquet"
            )
    except duckdb.Error as exc:
        raise LandingRejected(
            "unparseable",
            f"could not read {path.name}: {_engine_summary(exc, path)}",
            {"engine_error": str(exc)},
        ) from exc
    return [r[0] for r in con.execute("DESCRIBE src").fetchall()]


def validate_file(
    path: Path,
    spec: SourceSpec,
    *,
    known_stores: set[str] | None = None,
    output: Path | StoredTable | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> ValidatedFile:
    """Validate ``path`` against ``spec``; if valid and ``output`` is given, write Parquet
    (a local file, or a table of the workspace's data store).

    ``known_stores`` is the store master so far (needed for sources that reference
    stores); ``None`` means "no store master yet", which rejects such files.
    Raises ``LandingRejected`` with a stable ``code`` on the first class of problem found.
    """
    own = con is None
    con = con or duckdb.connect()
    try:
        return _validate(con, Path(path), spec, known_stores, output)
    finally:
        if own:
            con.close()


def _validate(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    spec: SourceSpec,
    known_stores: set[str] | None,
    output: Path | StoredTable | None,
) -> ValidatedFile:
    file_cols = _read_text(con, path, spec)
    wanted = {canon: c.source for canon, c in spec.columns.items()}
    missing = sorted(src for src in wanted.values() if src not in file_cols)
    if missing:
        raise LandingRejected(
            "missing_columns",
            f"missing columns {missing}; the file has {file_cols[:30]}",
            {"missing": missing, "found": file_cols[:100]},
        )
    ignored = sorted(set(file_cols) - set(wanted.values()))
    # columns the spec neither maps nor lists as deliberately ignored: a layout change
    unknown_cols = [c for c in ignored if c not in spec.ignore_columns]
    if unknown_cols and spec.unknown_columns == "quarantine":
        raise LandingRejected(
            "unknown_columns",
            f"{len(unknown_cols)} column(s) the spec does not know: {unknown_cols[:10]} (map "
            "them, list them in ignore_columns, or set unknown_columns: warn)",
            {"columns": unknown_cols},
        )
    total = con.execute("SELECT count(*) FROM src").fetchone()[0]
    if total == 0:
        raise LandingRejected("empty", "the file has a header but no rows")

    # 1. clean text (trim, NA markers -> NULL), with the source row number (1 = first data row)
    clean = ", ".join(
        f"CASE WHEN list_contains($na, trim({quote_ident(src)})) THEN NULL "
        f"ELSE trim({quote_ident(src)}) END AS {quote_ident(canon)}"
        for canon, src in wanted.items()
    )
    con.execute(
        f"CREATE TEMP TABLE txt AS SELECT row_number() OVER () AS _row, {clean} FROM src",
        {"na": list(spec.na_values)},
    )
    con.execute("DROP TABLE src")

    # 2. fill region from the file name where the spec says so
    region_expr = None
    if "region" not in spec.columns and spec.region_from_filename is not None:
        region_name = spec.region_from_filename.get(path.stem)
        if region_name is None:
            raise LandingRejected(
                "unknown_file",
                f"file name {path.stem!r} is not in this source's region_from_filename map",
                {"known": sorted(spec.region_from_filename)},
            )
        region_expr = region_name

    # 3. typed projection; collect cast failures
    typed = ", ".join(
        f"{_typed_expr(canon, c.dtype, c.date_format)} AS {quote_ident(canon)}"
        for canon, c in spec.columns.items()
    )
    con.execute(f"CREATE TEMP TABLE typed AS SELECT _row, {typed} FROM txt")
    for canon, col in spec.columns.items():
        q = quote_ident(canon)
        bad = con.execute(
            f"SELECT t._row, x.{q} FROM typed t JOIN txt x USING (_row) "
            f"WHERE x.{q} IS NOT NULL AND t.{q} IS NULL ORDER BY t._row LIMIT {MAX_EXAMPLES}"
        ).fetchall()
        if bad:
            n_bad = con.execute(
                f"SELECT count(*) FROM typed t JOIN txt x USING (_row) "
                f"WHERE x.{q} IS NOT NULL AND t.{q} IS NULL"
            ).fetchone()[0]
            code = "bad_dates" if col.dtype == "date" else "bad_type"
            raise LandingRejected(
                code,
                f"column {col.source!r}: {n_bad} value(s) are not {col.dtype}, e.g. "
                + ", ".join(f"row {r}: {v!r}" for r, v in bad),
                {"column": col.source, "count": n_bad, "examples": [list(b) for b in bad]},
            )
    con.execute("DROP TABLE txt")

    # 4. nulls, ranges, allowed values, plausible dates
    for canon, col in spec.columns.items():
        q = quote_ident(canon)
        problems = []
        if not col.nullable:
            problems.append(("null_values", f"{q} IS NULL", "is empty"))
        if col.dtype == "date":
            problems.append(
                (
                    "bad_dates",
                    f"({q} < DATE '{MIN_DATE}' OR {q} > DATE '{MAX_DATE}')",
                    f"is outside {MIN_DATE}..{MAX_DATE}",
                )
            )
        if col.min is not None:
            problems.append(("out_of_range", f"{q} < {float(col.min)!r}", f"is below {col.min}"))
        if col.max is not None:
            problems.append(("out_of_range", f"{q} > {float(col.max)!r}", f"is above {col.max}"))
        for code, cond, what in problems:
            _reject_where(con, code, cond, canon, col.source, what, {})
        if col.allowed is not None:
            _reject_where(
                con,
                "unknown_category",
                f"{q} IS NOT NULL AND NOT list_contains($allowed, {q})",
                canon,
                col.source,
                f"is not one of {list(col.allowed)}",
                {"allowed": list(col.allowed)},
            )

    # 5. canonical frame with filled item/region
    select = [quote_ident(c) for c in spec.columns]
    fills: dict[str, Any] = {}
    for canon, fill in _FILLED.items():
        if canon in spec.key and canon not in spec.columns:
            fills[f"fill_{canon}"] = region_expr if (canon == "region" and region_expr) else fill
            select.append(f"CAST($fill_{canon} AS VARCHAR) AS {quote_ident(canon)}")
    con.execute(f"CREATE TEMP TABLE norm AS SELECT _row, {', '.join(select)} FROM typed", fills)
    con.execute("DROP TABLE typed")
    if "region" in spec.key:
        con.execute("UPDATE norm SET region = '' WHERE region IS NULL")

    # 6. region names must be usable as partition keys
    regions: list[str] = []
    if spec.kind in ("stores", "store_regions", "weather", "events") and (
        "region" in spec.columns or region_expr
    ):
        regions = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT region FROM norm WHERE region IS NOT NULL AND region <> '' "
                "ORDER BY 1"
            ).fetchall()
        ]
        try:
            for name in regions:
                check_display_name(name)
            region_keys(regions)
        except UnsafeNameError as exc:
            raise LandingRejected("bad_region_name", str(exc)) from exc

    # 7. duplicates: exact copies are dropped, conflicting keys reject the file
    data_cols = ", ".join(quote_ident(c) for c in _output_columns(spec))
    key_cols = ", ".join(quote_ident(c) for c in spec.key)
    con.execute(
        f"CREATE TEMP TABLE dedup AS SELECT min(_row) AS _row, {data_cols} FROM norm GROUP BY ALL"
    )
    n_dedup = con.execute("SELECT count(*) FROM dedup").fetchone()[0]
    dropped = total - n_dedup
    conflicts = con.execute(
        f"SELECT {key_cols}, count(*) AS n, list(_row ORDER BY _row) FROM dedup "
        f"GROUP BY ALL HAVING count(*) > 1 ORDER BY min(_row) LIMIT {MAX_EXAMPLES}"
    ).fetchall()
    if conflicts:
        n_conf = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM dedup GROUP BY {key_cols} HAVING count(*) > 1)"
        ).fetchone()[0]
        raise LandingRejected(
            "duplicate_keys",
            f"{n_conf} key(s) {list(spec.key)} appear more than once with different values, "
            f"e.g. {[[str(v) for v in c[:-2]] for c in conflicts]} "
            f"at rows {[c[-1] for c in conflicts]}",
            {
                "key": list(spec.key),
                "count": n_conf,
                "examples": [[str(v) for v in c[:-2]] + [c[-1]] for c in conflicts],
            },
        )

    # 8. stores referenced must exist in the store master
    stores: list[str] = []
    if "store" in spec.columns:
        stores = [
            r[0] for r in con.execute("SELECT DISTINCT store FROM dedup ORDER BY 1").fetchall()
        ]
        if spec.references_stores:
            unknown = sorted(set(stores) - (known_stores or set()))
            if unknown:
                hint = (
                    "no store master has been ingested yet; drop the stores file first"
                    if not known_stores
                    else "add them to the store master first"
                )
                raise LandingRejected(
                    "unknown_store",
                    f"{len(unknown)} store(s) not in the store master, e.g. {unknown[:5]} ({hint})",
                    {"count": len(unknown), "examples": unknown[:20]},
                )

    date_min = date_max = None
    if "date" in spec.columns:
        date_min, date_max = (
            str(v) for v in con.execute("SELECT min(date), max(date) FROM dedup").fetchone()
        )
    sql = f"SELECT {data_cols} FROM dedup ORDER BY _row"
    if isinstance(output, StoredTable):
        output.write_query(con, sql, {})
    elif output is not None:  # any file on this machine
        atomic_copy_to_parquet(con, sql, {}, Path(output))
    con.execute("DROP TABLE norm")
    con.execute("DROP TABLE dedup")
    return ValidatedFile(
        rows=n_dedup,
        exact_duplicates_dropped=dropped,
        ignored_columns=ignored,
        unknown_columns=unknown_cols,
        stores=stores,
        regions=regions,
        date_min=date_min,
        date_max=date_max,
    )


def _output_columns(spec: SourceSpec) -> list[str]:
    cols = list(spec.columns)
    cols += [c for c in _FILLED if c in spec.key and c not in cols]
    return cols


def _reject_where(
    con: duckdb.DuckDBPyConnection,
    code: str,
    condition: str,
    canon: str,
    source_col: str,
    what: str,
    params: dict[str, Any],
) -> None:
    """Raise ``LandingRejected`` if any typed row meets ``condition`` (``params`` are bound
    into it and reported in the details)."""
    rows = con.execute(
        f"SELECT _row, CAST({quote_ident(canon)} AS VARCHAR) FROM typed WHERE {condition} "
        f"ORDER BY _row LIMIT {MAX_EXAMPLES}",
        params,
    ).fetchall()
    if rows:
        count = con.execute(f"SELECT count(*) FROM typed WHERE {condition}", params).fetchone()[0]
        raise LandingRejected(
            code,
            f"column {source_col!r}: {count} value(s) {what}, e.g. "
            + ", ".join(f"row {r}: {v!r}" for r, v in rows),
            {"column": source_col, "count": count, "examples": [list(r) for r in rows], **params},
        )
