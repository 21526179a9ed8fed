"""Dataset specs: the shipped ones load, and a broken spec is reported by file and field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_assets.spec import SPECS_DIR, DatasetSpec, SpecError, load_spec, objective_of
from mlops_assets.workspace import Workspace


def _sample_raw() -> dict[str, Any]:
    return yaml.safe_load((SPECS_DIR / "sample.yaml").read_text())


def _write(tmp_path: Path, raw: Any, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# -- shipped specs -------------------------------------------------------------------------


def test_sample_spec_loads_by_name_and_by_path(sample_spec: DatasetSpec) -> None:
    assert sample_spec.name == "sample"
    assert load_spec(SPECS_DIR / "sample.yaml") == sample_spec
    assert {s.kind for s in sample_spec.sources.values()} == {
        "sales",
        "stores",
        "weather",
        "events",
        "future",
        "actuals",
    }
    sales = sample_spec.source("sales")
    # ground truth dropped separately maps the same file columns as sales
    actuals = sample_spec.source("actuals")
    assert {n: c.source for n, c in actuals.columns.items()} == {
        n: c.source for n, c in sales.columns.items()
    }
    assert sales.columns["target"].source == "units"
    assert sales.columns["item"].source == "department"
    assert sample_spec.source("stores").columns["region"].source == "region"
    assert all(lag >= sample_spec.horizon for lag in sample_spec.target_lags)


def test_rossmann_spec_loads(rossmann_spec: DatasetSpec) -> None:
    assert rossmann_spec.name == "rossmann"
    assert rossmann_spec.has("store_regions")
    weather = rossmann_spec.source("weather")
    assert weather.delimiter == ";"
    assert weather.region_from_filename is not None
    assert weather.region_from_filename["Niedersachsen"] == "HB,NI"
    assert len(set(weather.region_from_filename.values())) == 12
    assert rossmann_spec.source("sales").columns["target"].source == "Sales"
    assert all(lag >= rossmann_spec.horizon for lag in rossmann_spec.target_lags)
    # late ground truth arrives in train.csv's own format
    actuals, sales = rossmann_spec.source("actuals"), rossmann_spec.source("sales")
    assert actuals.kind == "actuals" and list(actuals.files) == ["actuals/*.csv"]
    assert actuals.columns == sales.columns


def test_shipped_name_wins_over_a_folder_of_that_name_in_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. after `mlops-assets generate --out sample` in the current directory
    (tmp_path / "sample").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_spec("sample").name == "sample"


# -- errors name the file and the field ----------------------------------------------------


def _pop_target(raw: dict) -> None:
    del raw["sources"]["sales"]["columns"]["target"]


def _short_lag(raw: dict) -> None:
    raw["lags"] = [7, 42]


def _unknown_kind(raw: dict) -> None:
    raw["sources"]["weather"]["kind"] = "inventory"


def _two_sales(raw: dict) -> None:
    raw["sources"]["more_sales"] = copy.deepcopy(raw["sources"]["sales"])


def _misspelt_field(raw: dict) -> None:
    column = raw["sources"]["sales"]["columns"]["target"]
    column["dtyp"] = column.pop("dtype")


def _unknown_dtype(raw: dict) -> None:
    raw["sources"]["sales"]["columns"]["target"]["dtype"] = "decimal"


def _no_region(raw: dict) -> None:
    del raw["sources"]["stores"]["columns"]["region"]


def _weather_without_region(raw: dict) -> None:
    del raw["sources"]["weather"]["columns"]["region"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(_pop_target, ["sources.sales", "target"], id="missing-required-column"),
        pytest.param(_short_lag, ["lags", "[7]", "horizon 42"], id="lag-shorter-than-horizon"),
        pytest.param(_unknown_kind, ["sources.weather.kind", "'sales'"], id="unknown-kind"),
        pytest.param(_two_sales, ["'sales'", "more_sales"], id="two-sales-sources"),
        pytest.param(
            _misspelt_field, ["sources.sales.columns.target.dtyp", "Extra"], id="misspelt-field"
        ),
        pytest.param(_unknown_dtype, ["sources.sales.columns.target.dtype"], id="unknown-dtype"),
        pytest.param(_no_region, ["region", "store_regions"], id="no-region-anywhere"),
        pytest.param(
            _weather_without_region, ["sources.weather", "region_from_filename"], id="weather"
        ),
    ],
)
def test_invalid_spec_error_names_file_and_field(
    tmp_path: Path, mutate: Callable[[dict], None], expected: list[str]
) -> None:
    raw = _sample_raw()
    mutate(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    message = str(exc.value)
    assert str(path) in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("name", ["süd", "_sales", "sales-2", "Sales", "sales name"])
def test_source_names_that_cannot_become_folders_are_rejected_on_load(
    tmp_path: Path, name: str
) -> None:
    """Source names become landing/raw folder names and asset keys: they must be safe keys,
    and a spec that would fail later (at the first sensor tick) must fail on load."""
    raw = _sample_raw()
    raw["sources"][name] = raw["sources"].pop("sales")
    path = _write(tmp_path, raw)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert str(path) in str(exc.value)
    assert repr(name) in str(exc.value)


def test_every_loadable_source_name_is_a_usable_folder(tmp_path: Path) -> None:
    raw = _sample_raw()
    raw["sources"]["sales_2"] = raw["sources"].pop("sales")
    spec = load_spec(_write(tmp_path, raw))
    ws = Workspace(tmp_path / "ws")
    for name in spec.sources:
        assert ws.landing_dir(name).name == name


def test_unknown_shipped_name_lists_the_shipped_specs() -> None:
    with pytest.raises(SpecError) as exc:
        load_spec("no_such_dataset")
    message = str(exc.value)
    assert "no_such_dataset" in message
    assert "rossmann" in message and "sample" in message


def test_missing_yaml_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="nothere.yaml"):
        load_spec(tmp_path / "nothere.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("name: [unclosed\n", "not valid YAML"), ("", "<root>"), ("- a\n- b\n", "<root>")],
    ids=["bad-yaml", "empty-file", "a-list"],
)
def test_unusable_yaml_is_a_spec_error_naming_the_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert str(path) in str(exc.value)
    assert expected in str(exc.value)


def test_with_overrides_replaces_given_values_keeps_the_rest_and_validates(
    sample_spec: DatasetSpec,
) -> None:
    from pydantic import ValidationError

    tuning = sample_spec.tuning.with_overrides(n_trials=3, timeout_seconds=None)
    assert tuning.n_trials == 3
    assert tuning.timeout_seconds == sample_spec.tuning.timeout_seconds
    kept = sample_spec.retention.with_overrides(keep_archived=None, keep_rejected=0)
    assert (kept.keep_archived, kept.keep_rejected) == (4, 0)
    with pytest.raises(ValidationError, match="keep_archived"):
        sample_spec.retention.with_overrides(keep_archived=-1)


def test_spec_that_is_a_folder_or_not_text_is_a_spec_error(tmp_path: Path) -> None:
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(SpecError, match="is a folder"):
        load_spec(tmp_path / "folder.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpecError, match="cannot be read as UTF-8 text"):
        load_spec(tmp_path / "latin1.yaml")


def test_unknown_columns_setting_is_warn_or_quarantine(tmp_path: Path) -> None:
    assert {s.unknown_columns for s in load_spec("sample").sources.values()} == {"warn"}
    text = (
        (SPECS_DIR / "sample.yaml")
        .read_text()
        .replace("    kind: sales\n", "    kind: sales\n    unknown_columns: drop\n", 1)
    )
    (tmp_path / "odd.yaml").write_text(text)
    with pytest.raises(SpecError, match="sources.sales.unknown_columns"):
        load_spec(tmp_path / "odd.yaml")


def test_level_features_with_a_linked_objective_are_refused_with_the_way_out(
    sample_spec: DatasetSpec,
) -> None:
    from pydantic import ValidationError

    model = sample_spec.model
    assert model.level_features  # the default boosts from a lagged level
    for params in ({"objective": "poisson"}, {"application": "Tweedie"}):
        with pytest.raises(ValidationError, match="level_features: \\[\\]"):
            model.with_overrides(params=params)
    assert model.with_overrides(params={"objective": "poisson"}, level_features=()).params == {
        "objective": "poisson"
    }
    assert model.with_overrides(params={"objective": "huber"}).level_features


def test_the_objective_is_read_under_any_of_lightgbms_names() -> None:
    assert objective_of({"Application": "Tweedie"}) == "tweedie"
    assert objective_of({"loss": "huber", "learning_rate": 0.1}) == "huber"
    assert objective_of({"learning_rate": 0.1}) is None
