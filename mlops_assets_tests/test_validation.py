"""Landing-file validation: every rejection code, with a bad file derived from valid rows.

Each bad file is a few real rows of the generated sample data with one thing broken, so a
test fails if validation rejects good data as well as if it lets bad data through.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mlops_assets.naming import region_keys
from mlops_assets.spec import DatasetSpec, SourceSpec
from mlops_assets.validation import LandingRejected, ValidatedFile, validate_file

Rows = list[dict[str, str]]


def read_rows(path: Path, n: int | None = 6) -> Rows:
    """The first ``n`` data rows of a CSV as dicts of text (all rows if ``n`` is None)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return rows if n is None else rows[:n]


def write_rows(path: Path, rows: Rows, delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def with_value(rows: Rows, index: int, column: str, value: str) -> Rows:
    out = [dict(r) for r in rows]
    out[index][column] = value
    return out


@pytest.fixture
def sales_rows(sample_dir: Path) -> Rows:
    return read_rows(sample_dir / "sales" / "sales_2023.csv")


@pytest.fixture
def store_rows(sample_dir: Path) -> Rows:
    return read_rows(sample_dir / "stores" / "stores.csv", n=None)


@pytest.fixture
def known_stores(store_rows: Rows) -> set[str]:
    return {r["store_id"] for r in store_rows}


def reject(
    path: Path, source: SourceSpec, *, known_stores: set[str] | None = None
) -> LandingRejected:
    with pytest.raises(LandingRejected) as exc:
        validate_file(path, source, known_stores=known_stores)
    return exc.value


def assert_names_column_and_row(
    exc: LandingRejected, column: str, row: int, value: str | None
) -> None:
    assert repr(column) in exc.message
    assert f"row {row}:" in exc.message
    if value is not None:
        assert repr(value) in exc.message
    assert exc.details["column"] == column
    assert exc.details["count"] >= 1


# -- good files ----------------------------------------------------------------------------


def test_sample_files_are_valid(sample_dir: Path, sample_spec: DatasetSpec) -> None:
    stores = validate_file(sample_dir / "stores" / "stores.csv", sample_spec.sources["stores"])
    assert stores.rows == 12
    assert "Rhein, Main" in stores.regions and "Süd" in stores.regions
    known = set(stores.stores)
    for source in ("sales", "weather", "events", "future"):
        for path in sorted((sample_dir / source).glob("*.csv")):
            result = validate_file(path, sample_spec.sources[source], known_stores=known)
            assert result.rows == len(read_rows(path, n=None)), path
            assert result.exact_duplicates_dropped == 0


def test_valid_file_is_written_as_canonical_parquet(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    path = write_rows(tmp_path / "sales.csv", sales_rows)
    out = tmp_path / "raw" / "out.parquet"
    result = validate_file(
        path, sample_spec.sources["sales"], known_stores=known_stores, output=out
    )
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["date", "store", "item", "target", "open", "promo"]
    assert len(frame) == result.rows == len(sales_rows)
    assert frame["target"].tolist() == [float(r["units"]) for r in sales_rows]
    assert frame["date"].astype(str).tolist() == [r["date"] for r in sales_rows]
    assert result.date_min == sales_rows[0]["date"]
    assert not list(out.parent.glob(".*"))  # no temporary file left behind


# -- one test per rejection code -----------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(os.urandom(4096), id="random-bytes"),
        pytest.param(bytes(range(256)) * 16, id="all-byte-values"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, id="png-named-csv"),
    ],
)
def test_binary_garbage_is_unparseable(
    tmp_path: Path, content: bytes, sample_spec: DatasetSpec
) -> None:
    path = tmp_path / "sales.csv"
    path.write_bytes(content)
    exc = reject(path, sample_spec.sources["sales"], known_stores=set())
    assert exc.code == "unparseable"
    assert "sales.csv" in exc.message


@pytest.mark.parametrize("extra", [-1, +1], ids=["short-row", "long-row"])
def test_ragged_rows_are_unparseable(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str], extra: int
) -> None:
    lines = write_rows(tmp_path / "x.csv", sales_rows).read_text().splitlines()
    fields = lines[3].split(",")
    lines[3] = ",".join(fields[:-1] if extra < 0 else [*fields, "7"])
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    exc = reject(path, sample_spec.sources["sales"], known_stores=known_stores)
    assert exc.code == "unparseable"


def test_ragged_row_deep_in_a_file_is_unparseable_and_located(
    tmp_path: Path, sample_dir: Path, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    lines = (sample_dir / "sales" / "sales_2023.csv").read_text().splitlines()
    lines[9000] = lines[9000].rsplit(",", 1)[0]
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    exc = reject(path, sample_spec.sources["sales"], known_stores=known_stores)
    assert exc.code == "unparseable"
    assert lines[9000] in exc.message


def test_header_only_file_is_empty(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    path = tmp_path / "sales.csv"
    path.write_text(",".join(sales_rows[0]) + "\n")
    exc = reject(path, sample_spec.sources["sales"], known_stores=known_stores)
    assert exc.code == "empty"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_zero_byte_file_is_empty(tmp_path: Path, sample_spec: DatasetSpec, suffix: str) -> None:
    path = tmp_path / f"sales{suffix}"
    path.write_bytes(b"")
    exc = reject(path, sample_spec.sources["sales"], known_stores={"S0001"})
    assert exc.code == "empty"


def test_missing_columns_are_named(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    rows = [{k: v for k, v in r.items() if k not in ("units", "promo")} for r in sales_rows]
    exc = reject(
        write_rows(tmp_path / "s.csv", rows),
        sample_spec.sources["sales"],
        known_stores=known_stores,
    )
    assert exc.code == "missing_columns"
    assert exc.details["missing"] == ["promo", "units"]
    assert "'promo'" in exc.message and "'units'" in exc.message
    assert "store_id" in exc.message  # what the file has instead


def test_text_in_a_number_column_is_bad_type(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    rows = with_value(sales_rows, 2, "units", "abc")
    exc = reject(
        write_rows(tmp_path / "s.csv", rows),
        sample_spec.sources["sales"],
        known_stores=known_stores,
    )
    assert exc.code == "bad_type"
    assert_names_column_and_row(exc, "units", 3, "abc")


def test_row_examples_point_at_the_right_row_of_a_large_file(
    tmp_path: Path, sample_dir: Path, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    rows = read_rows(sample_dir / "sales" / "sales_2023.csv", n=None)
    assert len(rows) > 10_000
    rows = with_value(rows, 9_999, "units", "12,5")
    rows = with_value(rows, 12_345, "units", "n/a")
    exc = reject(
        write_rows(tmp_path / "s.csv", rows),
        sample_spec.sources["sales"],
        known_stores=known_stores,
    )
    assert exc.code == "bad_type"
    assert exc.details["count"] == 2
    assert "row 10000: '12,5'" in exc.message
    assert "row 12346: 'n/a'" in exc.message


@pytest.mark.parametrize("bad", ["2023-13-45", "1800-01-02", "2150-06-01", "yesterday"])
def test_impossible_or_implausible_dates_are_bad_dates(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str], bad: str
) -> None:
    rows = with_value(sales_rows, 4, "date", bad)
    exc = reject(
        write_rows(tmp_path / "s.csv", rows),
        sample_spec.sources["sales"],
        known_stores=known_stores,
    )
    assert exc.code == "bad_dates"
    assert_names_column_and_row(exc, "date", 5, bad)


def _day_first(sample_spec: DatasetSpec) -> SourceSpec:
    """The sales source reading dates written as 23.11.2024 (``date_format``)."""
    sales = sample_spec.sources["sales"]
    date = sales.columns["date"].model_copy(update={"date_format": "%d.%m.%Y"})
    return sales.model_copy(update={"columns": {**sales.columns, "date": date}})


def test_dates_in_a_declared_format_are_read_as_dates(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    rows = [dict(r, date=pd.Timestamp(r["date"]).strftime("%d.%m.%Y")) for r in sales_rows]
    out = tmp_path / "out.parquet"
    path = write_rows(tmp_path / "s.csv", rows)
    validate_file(path, _day_first(sample_spec), known_stores=known_stores, output=out)
    frame = pd.read_parquet(out)
    assert frame["date"].astype(str).tolist() == [r["date"] for r in sales_rows]
    # an ISO date is not in the declared format: rejected, not guessed
    iso = with_value(rows, 2, "date", sales_rows[2]["date"])
    exc = reject(
        write_rows(tmp_path / "iso.csv", iso), _day_first(sample_spec), known_stores=known_stores
    )
    assert exc.code == "bad_dates"
    assert_names_column_and_row(exc, "date", 3, sales_rows[2]["date"])


@pytest.mark.parametrize("empty", ["", "NA", "  "])
def test_empty_value_in_required_column_is_null_values(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str], empty: str
) -> None:
    rows = with_value(sales_rows, 1, "units", empty)
    exc = reject(
        write_rows(tmp_path / "s.csv", rows),
        sample_spec.sources["sales"],
        known_stores=known_stores,
    )
    assert exc.code == "null_values"
    assert_names_column_and_row(exc, "units", 2, None)


def test_empty_value_in_nullable_column_is_accepted(
    tmp_path: Path, store_rows: Rows, sample_spec: DatasetSpec
) -> None:
    rows = with_value(store_rows, 0, "opened", "")
    result = validate_file(write_rows(tmp_path / "st.csv", rows), sample_spec.sources["stores"])
    assert result.rows == len(store_rows)


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("promo", "2", "'2'"),
        ("open", "-1", "'-1'"),
        ("units", "1e9", "'1000000000.0'"),
        ("units", "nan", "'nan'"),
        ("units", "-inf", "'-inf'"),
    ],
)
def test_value_outside_declared_range_is_out_of_range(
    tmp_path: Path,
    sales_rows: Rows,
    sample_spec: DatasetSpec,
    known_stores: set[str],
    column: str,
    value: str,
    shown: str,
) -> None:
    rows = with_value(sales_rows, 3, column, value)
    exc = reject(
        write_rows(tmp_path / "s.csv", rows),
        sample_spec.sources["sales"],
        known_stores=known_stores,
    )
    assert exc.code == "out_of_range"
    assert_names_column_and_row(exc, column, 4, None)
    assert f"row 4: {shown}" in exc.message


def test_value_outside_allowed_set_is_unknown_category(
    tmp_path: Path, store_rows: Rows, sample_spec: DatasetSpec
) -> None:
    rows = with_value(store_rows, 1, "format", "huge")
    exc = reject(write_rows(tmp_path / "st.csv", rows), sample_spec.sources["stores"])
    assert exc.code == "unknown_category"
    assert_names_column_and_row(exc, "format", 2, "huge")
    assert "large" in exc.message and "small" in exc.message


def test_conflicting_rows_for_one_key_are_duplicate_keys(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    twin = dict(sales_rows[2], units=str(float(sales_rows[2]["units"]) + 5))
    rows = [*sales_rows, twin]
    exc = reject(
        write_rows(tmp_path / "s.csv", rows),
        sample_spec.sources["sales"],
        known_stores=known_stores,
    )
    assert exc.code == "duplicate_keys"
    assert exc.details["key"] == ["store", "item", "date"]
    assert exc.details["count"] == 1
    first, second = 3, len(rows)
    assert f"[{first}, {second}]" in exc.message
    for value in (sales_rows[2]["store_id"], sales_rows[2]["department"], sales_rows[2]["date"]):
        assert f"'{value}'" in exc.message


def test_exact_duplicate_rows_are_dropped_and_counted_not_rejected(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    rows = [*sales_rows, sales_rows[1], sales_rows[4], sales_rows[4]]
    out = tmp_path / "out.parquet"
    result = validate_file(
        write_rows(tmp_path / "s.csv", rows),
        sample_spec.sources["sales"],
        known_stores=known_stores,
        output=out,
    )
    assert result.rows == len(sales_rows)
    assert result.exact_duplicates_dropped == 3
    frame = pd.read_parquet(out)
    assert len(frame) == len(sales_rows)
    assert not frame.duplicated(["store", "item", "date"]).any()
    # the first occurrence is kept, in file order
    assert frame["date"].astype(str).tolist() == [r["date"] for r in sales_rows]


def test_store_missing_from_the_store_master_is_unknown_store(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    rows = with_value(sales_rows, 2, "store_id", "S9999")
    path = write_rows(tmp_path / "s.csv", rows)
    exc = reject(path, sample_spec.sources["sales"], known_stores=known_stores)
    assert exc.code == "unknown_store"
    assert "'S9999'" in exc.message
    assert exc.details == {"count": 1, "examples": ["S9999"]}


def test_no_store_master_yet_is_unknown_store_with_a_hint(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec
) -> None:
    path = write_rows(tmp_path / "s.csv", sales_rows)
    exc = reject(path, sample_spec.sources["sales"], known_stores=None)
    assert exc.code == "unknown_store"
    assert "store master" in exc.message and "first" in exc.message


@pytest.mark.parametrize(
    ("regions", "shown"),
    [
        ({0: "Nord\x07"}, "'Nord\\x07'"),
        ({0: "Nord\u200b"}, "Nord"),
        ({0: "Rhein Main", 1: "Rhein, Main"}, "'Rhein_Main'"),
        ({0: "A,B", 1: "A B"}, "'A_B'"),
        ({0: "💥"}, "'💥'"),
        ({0: "R" * 200}, "RRRR"),
    ],
    ids=["control-char", "zero-width", "collision", "comma-vs-space", "no-letters", "too-long"],
)
def test_unusable_region_names_are_bad_region_name(
    tmp_path: Path,
    store_rows: Rows,
    sample_spec: DatasetSpec,
    regions: dict[int, str],
    shown: str,
) -> None:
    rows = store_rows
    for index, name in regions.items():
        rows = with_value(rows, index, "region", name)
    exc = reject(write_rows(tmp_path / "st.csv", rows), sample_spec.sources["stores"])
    assert exc.code == "bad_region_name"
    assert shown in exc.message


def test_weather_file_not_in_the_file_name_map_is_unknown_file(
    tmp_path: Path, rossmann_spec: DatasetSpec
) -> None:
    weather = rossmann_spec.sources["weather"]
    row = {c.source: "1" for c in weather.columns.values()}
    row.update(Date="2015-01-01", Events="Rain", CloudCover="")
    rows = [row, dict(row, Date="2015-01-02")]
    # the same content under a mapped name is fine and takes its region from the map
    ok = validate_file(write_rows(tmp_path / "Niedersachsen.csv", rows, delimiter=";"), weather)
    assert ok.regions == ["HB,NI"]
    exc = reject(write_rows(tmp_path / "Bremen.csv", rows, delimiter=";"), weather)
    assert exc.code == "unknown_file"
    assert "'Bremen'" in exc.message
    assert "Niedersachsen" in exc.details["known"]


@pytest.mark.parametrize("name", ["sales.xlsx", "sales.json", "sales"])
def test_other_file_types_are_unsupported_format(
    tmp_path: Path, sample_spec: DatasetSpec, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    exc = reject(path, sample_spec.sources["sales"], known_stores={"S0001"})
    assert exc.code == "unsupported_format"


# -- formats, types and hostile names ------------------------------------------------------


def _to_parquet(csv_path: Path) -> Path:
    """The CSV as Parquet with native types (date32, int64, double), as exporters write it."""
    path = csv_path.with_suffix(".parquet")
    pq.write_table(pacsv.read_csv(csv_path), path)
    return path


@pytest.mark.parametrize(
    ("column", "value", "code"),
    [
        (None, None, None),
        ("promo", "2", "out_of_range"),
        ("units", "", "null_values"),
        ("store_id", "S9999", "unknown_store"),
    ],
    ids=["valid", "out-of-range", "null", "unknown-store"],
)
def test_parquet_validates_the_same_as_csv(
    tmp_path: Path,
    sales_rows: Rows,
    sample_spec: DatasetSpec,
    known_stores: set[str],
    column: str | None,
    value: str | None,
    code: str | None,
) -> None:
    rows = with_value(sales_rows, 2, column, value) if column else sales_rows
    rows = [*rows, rows[0]]  # one exact duplicate
    csv_path = write_rows(tmp_path / "sales.csv", rows)
    pq_path = _to_parquet(csv_path)
    assert pq.read_schema(pq_path).field("date").type == "date32[day]"
    outcomes: list[ValidatedFile | str] = []
    for path in (csv_path, pq_path):
        out = path.with_name(path.name + ".out")
        try:
            result = validate_file(
                path, sample_spec.sources["sales"], known_stores=known_stores, output=out
            )
            outcomes.append(result)
        except LandingRejected as exc:
            outcomes.append(exc.code)
    if code is not None:
        assert outcomes == [code, code]
        return
    assert outcomes[0] == outcomes[1]
    assert outcomes[0].rows == len(sales_rows)
    assert outcomes[0].exact_duplicates_dropped == 1
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "sales.csv.out"), pd.read_parquet(tmp_path / "sales.parquet.out")
    )


@pytest.mark.parametrize(("value", "ok"), [("1", True), ("1.0", True), ("1.5", False)])
def test_int_column_accepts_whole_floats_only(
    tmp_path: Path,
    sales_rows: Rows,
    sample_spec: DatasetSpec,
    known_stores: set[str],
    value: str,
    ok: bool,
) -> None:
    rows = with_value(sales_rows, 0, "open", value)
    path = write_rows(tmp_path / "s.csv", rows)
    if ok:
        out = tmp_path / "out.parquet"
        validate_file(path, sample_spec.sources["sales"], known_stores=known_stores, output=out)
        frame = pd.read_parquet(out)
        assert frame["open"].iloc[0] == 1
        assert pd.api.types.is_integer_dtype(frame["open"])
    else:
        exc = reject(path, sample_spec.sources["sales"], known_stores=known_stores)
        assert exc.code == "bad_type"
        assert_names_column_and_row(exc, "open", 1, "1.5")


@pytest.mark.parametrize("name", ["x'; DROP TABLE y; --.csv", 'we"ird $p {x} [1] (copy)*?.csv'])
def test_hostile_file_names_validate_like_any_other(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str], name: str
) -> None:
    path = write_rows(tmp_path / name, sales_rows)
    out = tmp_path / "raw'; DROP TABLE z; --" / "out'.parquet"
    result = validate_file(
        path, sample_spec.sources["sales"], known_stores=known_stores, output=out
    )
    assert result.rows == len(sales_rows)
    assert len(pd.read_parquet(out)) == len(sales_rows)
    assert path.exists()


def test_quote_in_a_column_name_does_not_break_sql(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    odd = 'a"b'
    rows = [dict(r, **{odd: "x", "c'); DROP TABLE src; --": "y"}) for r in sales_rows]
    path = write_rows(tmp_path / "s.csv", rows)
    result = validate_file(path, sample_spec.sources["sales"], known_stores=known_stores)
    assert result.rows == len(sales_rows)
    assert result.ignored_columns == sorted([odd, "c'); DROP TABLE src; --"])
    # the same through the Parquet path, where every column is cast by name
    assert validate_file(_to_parquet(path), sample_spec.sources["sales"], known_stores=known_stores)


def test_a_spec_may_map_a_column_whose_name_holds_quotes(tmp_path: Path) -> None:
    source = SourceSpec(
        kind="stores",
        columns={"store": {"source": 'id "x"'}, "region": {"source": "it's"}},
    )
    path = write_rows(tmp_path / "st.csv", [{'id "x"': "S1", "it's": "Nord"}])
    out = tmp_path / "out.parquet"
    result = validate_file(path, source, output=out)
    assert result.stores == ["S1"] and result.regions == ["Nord"]
    assert pd.read_parquet(out).to_dict("records") == [{"store": "S1", "region": "Nord"}]


# -- the real rossmann-100 data ------------------------------------------------------------


def test_rossmann_train_keeps_all_rows_but_six_exact_duplicates(
    rossmann_dir: Path, rossmann_spec: DatasetSpec
) -> None:
    stores = validate_file(rossmann_dir / "store.csv", rossmann_spec.sources["stores"])
    train = validate_file(
        rossmann_dir / "train.csv", rossmann_spec.sources["sales"], known_stores=set(stores.stores)
    )
    assert train.rows == 91_256
    assert train.exact_duplicates_dropped == 6
    assert (train.date_min, train.date_max) == ("2013-01-01", "2015-07-31")
    # the columns the spec leaves out on purpose are not reported as unknown
    assert (train.ignored_columns, train.unknown_columns) == (["Customers", "DayOfWeek"], [])


def test_rossmann_files_have_no_columns_the_spec_does_not_know(
    rossmann_dir: Path, rossmann_spec: DatasetSpec
) -> None:
    stores = validate_file(rossmann_dir / "store.csv", rossmann_spec.sources["stores"])
    for name in ("weather", "future"):
        source = rossmann_spec.sources[name]
        for pattern in source.files:
            for path in sorted(rossmann_dir.glob(pattern)):
                result = validate_file(path, source, known_stores=set(stores.stores))
                assert result.unknown_columns == [], path.name
                assert result.ignored_columns, path.name


def test_rossmann_store_states_map_to_twelve_safe_keys(
    rossmann_dir: Path, rossmann_spec: DatasetSpec
) -> None:
    stores = validate_file(rossmann_dir / "store.csv", rossmann_spec.sources["stores"])
    states = validate_file(
        rossmann_dir / "store_states.csv",
        rossmann_spec.sources["store_regions"],
        known_stores=set(stores.stores),
    )
    keys = region_keys(states.regions)
    assert len(set(keys.values())) == 12
    assert keys["HB,NI"] == "HB_NI"
    assert all("," not in k for k in keys.values())


# -- reasons people read: one short line, no absolute paths, the engine's text in details --


def _malformed(tmp_path: Path, sales_rows: Rows, kind: str) -> Path:
    lines = write_rows(tmp_path / "x.csv", sales_rows).read_text().splitlines()
    if kind == "ragged":
        lines[3] += ",7"
    elif kind == "stray-quote":
        lines[2] = '"' + lines[2]
    path = tmp_path / "deep" / "er" / f"{kind}.csv"
    path.parent.mkdir(parents=True)
    if kind == "not-utf8":
        path.write_bytes(("\n".join(lines) + "\n").encode().replace(b"S0", b"\xff\xfe", 1))
    else:
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", ["ragged", "stray-quote", "not-utf8"])
def test_unparseable_reason_is_one_short_line_and_details_keep_the_engine_text(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str], kind: str
) -> None:
    path = _malformed(tmp_path, sales_rows, kind)
    exc = reject(path, sample_spec.sources["sales"], known_stores=known_stores)
    assert exc.code == "unparseable"
    assert exc.message.startswith(f"could not read {path.name}: ")
    assert "\n" not in exc.message and len(exc.message) <= 300
    assert str(tmp_path) not in exc.message and "/" not in exc.message
    engine = exc.details["engine_error"]
    assert "\n" in engine and "Error" in engine  # DuckDB's full, multi-line text


def test_ragged_row_reason_says_where_in_plain_words(
    tmp_path: Path, sample_dir: Path, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    lines = (sample_dir / "sales" / "sales_2023.csv").read_text().splitlines()
    lines[9000] = lines[9000].rsplit(",", 1)[0]
    path = tmp_path / "short.csv"
    path.write_text("\n".join(lines) + "\n")
    exc = reject(path, sample_spec.sources["sales"], known_stores=known_stores)
    assert exc.code == "unparseable"
    assert "line 9001 has 5 fields where the header has 6" in exc.message
    assert "\n" not in exc.message and str(tmp_path) not in exc.message
    assert str(path) in exc.details["engine_error"]


def test_wrong_types_reason_is_one_line(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    path = write_rows(tmp_path / "x.csv", with_value(sales_rows, 2, "units", "12\nunits"))
    exc = reject(path, sample_spec.sources["sales"], known_stores=known_stores)
    assert exc.code == "bad_type" and "\n" not in exc.message
    assert "row 3: '12\\nunits'" in exc.message


def test_a_long_reason_is_cut_and_kept_whole_in_details(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    rows = [{f"unexpected_column_{i:03d}": "x" for i in range(60)}]
    exc = reject(write_rows(tmp_path / "wide.csv", rows), sample_spec.sources["sales"])
    assert exc.code == "missing_columns"
    assert len(exc.message) <= 300 and exc.message.endswith("…")
    assert "unexpected_column_029" in exc.details["full_message"]


# -- columns the spec does not know ----------------------------------------------------------


def _with_extra_column(tmp_path: Path, rows: Rows) -> Path:
    return write_rows(tmp_path / "extra.csv", [{**r, "colour": "red", "Notes": ""} for r in rows])


def test_unknown_columns_are_dropped_and_named_by_default(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    source = sample_spec.sources["sales"]
    assert source.unknown_columns == "warn"
    out = tmp_path / "out.parquet"
    result = validate_file(
        _with_extra_column(tmp_path, sales_rows), source, known_stores=known_stores, output=out
    )
    assert result.rows == len(sales_rows)
    assert result.unknown_columns == ["Notes", "colour"] == result.ignored_columns
    assert result.summary()["unknown_columns"] == ["Notes", "colour"]
    assert "colour" not in pd.read_parquet(out).columns


def test_columns_listed_as_ignored_are_not_unknown(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    source = sample_spec.sources["sales"].with_overrides(
        ignore_columns=["colour"], unknown_columns="quarantine"
    )
    path = write_rows(tmp_path / "x.csv", [{**r, "colour": "red"} for r in sales_rows])
    result = validate_file(path, source, known_stores=known_stores)
    assert (result.ignored_columns, result.unknown_columns) == (["colour"], [])


def test_unknown_columns_quarantine_the_file_when_the_spec_says_so(
    tmp_path: Path, sales_rows: Rows, sample_spec: DatasetSpec, known_stores: set[str]
) -> None:
    source = sample_spec.sources["sales"].with_overrides(unknown_columns="quarantine")
    exc = reject(_with_extra_column(tmp_path, sales_rows), source, known_stores=known_stores)
    assert exc.code == "unknown_columns"
    assert "['Notes', 'colour']" in exc.message and "\n" not in exc.message
    assert exc.details["columns"] == ["Notes", "colour"]
