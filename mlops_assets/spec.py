"""Dataset specs: what a dataset's files and columns mean, declared as data.

A new dataset is onboarded by writing a YAML spec (see ``mlops_assets/specs/``), not by
changing pipeline code. The spec maps each source's file columns onto the canonical
names the pipeline uses and declares types, allowed ranges and keys, which the landing
validation enforces.

Canonical sources (``kind``) and the columns each must provide:

- ``sales``: ``date``, ``store``, ``target`` (optionally ``item``) plus exogenous columns.
- ``stores``: ``store`` (optionally ``region``) plus store attributes.
- ``store_regions``: ``store``, ``region`` (when the store master lacks a region column).
- ``weather``: ``date``, ``region`` (or a file-name -> region map) plus numeric columns.
- ``events``: ``date``, ``event`` (optionally ``region``; empty means national).
- ``future``: the known future calendar: ``date``, ``store`` (optionally ``item``) plus
  known-in-advance exogenous columns.
- ``actuals``: ground truth arriving after forecasts; same columns as ``sales``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SPECS_DIR = Path(__file__).parent / "specs"
_SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")

SourceKind = Literal["sales", "stores", "store_regions", "weather", "events", "future", "actuals"]
DType = Literal["date", "int", "float", "str"]

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "sales": ("date", "store", "target"),
    "stores": ("store",),
    "store_regions": ("store", "region"),
    "weather": ("date",),
    "events": ("date", "event"),
    "future": ("date", "store"),
    "actuals": ("date", "store", "target"),
}
# Key columns that identify one row of each source (duplicates of a key within a file are
# an error unless the rows are exact copies).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "sales": ("store", "item", "date"),
    "stores": ("store",),
    "store_regions": ("store",),
    "weather": ("region", "date"),
    "events": ("region", "date", "event"),
    "future": ("store", "item", "date"),
    "actuals": ("store", "item", "date"),
}
# Canonical columns whose values are identifiers rather than features.
IDENTIFIER_COLUMNS = frozenset({"date", "store", "item", "region", "target", "event"})


class SpecError(ValueError):
    """A dataset spec is invalid; the message names the file and the bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """One canonical column: where it comes from in the file and what values are valid."""

    source: str = Field(description="column name in the landing file")
    dtype: DType = "str"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = Field(
        default=None, description="allowed values (compared as text) for categorical columns"
    )
    role: Literal["numeric", "categorical", "id"] | None = Field(
        default=None,
        description="feature role; default: id for identifier columns, numeric for int/float, "
        "categorical for str",
    )
    date_format: str | None = Field(default=None, description="strptime format if not ISO")

    def feature_role(self, canonical: str) -> str:
        if self.role is not None:
            return self.role
        if canonical in IDENTIFIER_COLUMNS:
            return "id"
        return "numeric" if self.dtype in ("int", "float") else "categorical"


class SourceSpec(_Strict):
    """A landing source: one folder of files of the same shape."""

    kind: SourceKind
    files: tuple[str, ...] = Field(
        default=("*.csv", "*.parquet"),
        description="glob patterns, relative to a dataset directory, that `ingest` drops here",
    )
    delimiter: str = ","
    na_values: tuple[str, ...] = ("", "NA")
    columns: dict[str, ColumnSpec]
    region_from_filename: dict[str, str] | None = Field(
        default=None,
        description="file stem -> region display name, for files that carry no region column",
    )
    known_in_advance: bool = Field(
        default=True,
        description="whether this source's feature values are known for future dates "
        "(e.g. promotions, holidays, a weather forecast); if false they are lagged by the "
        "horizon in the feature table",
    )

    @model_validator(mode="after")
    def _required_columns(self) -> SourceSpec:
        missing = [c for c in REQUIRED_COLUMNS[self.kind] if c not in self.columns]
        if (
            self.kind == "weather"
            and "region" not in self.columns
            and not (self.region_from_filename)
        ):
            missing.append("region (or region_from_filename)")
        if missing:
            raise ValueError(f"a {self.kind!r} source needs columns {missing}")
        return self

    @property
    def key(self) -> tuple[str, ...]:
        """Key of a normalised row (``item``/``region`` are filled in when the file has none)."""
        return KEY_COLUMNS[self.kind]

    def feature_columns(self, role: str) -> list[str]:
        return [n for n, c in self.columns.items() if c.feature_role(n) == role]


class Thresholds(_Strict):
    """Data-quality thresholds used by the asset checks (overridable per environment)."""

    max_null_rate: float = Field(0.05, ge=0, le=1)
    max_row_count_drop: float = Field(
        0.5, ge=0, le=1, description="largest allowed fall in rows vs the previous run"
    )
    freshness_days: int = Field(
        14,
        ge=0,
        description="warn when a region's latest sale is this many days before the "
        "latest sale in the dataset",
    )
    min_history_days: int = Field(90, ge=1, description="fewest days a region needs to model")
    landing_max_age_days: int = Field(
        8, ge=1, description="warn when no sales file has been ingested for this many days"
    )


DEFAULT_LGBM_PARAMS: dict[str, float | int | str] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "num_threads": 1,  # regions train in parallel runs: one thread each avoids oversubscription
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
}


class ModelSettings(_Strict):
    """The reviewed, fixed training configuration of the per-region models."""

    params: dict[str, float | int | str | bool] = Field(
        default_factory=lambda: dict(DEFAULT_LGBM_PARAMS),
        description="LightGBM parameters (merged over the defaults)",
    )
    num_boost_round: int = Field(3000, ge=1)
    early_stopping_rounds: int = Field(100, ge=1)
    target_transform: Literal["log1p", "none"] = Field(
        "log1p", description="fit on log1p(target): errors become relative, as MAPE is"
    )
    metric_floor: float = Field(
        0.0, ge=0, description="MAPE/RMSPE are computed over rows whose actual exceeds this"
    )
    level_features: tuple[str, ...] = Field(
        ("roll_mean_91", "roll_mean_364", "series_mean"),
        description="the model learns each row's target relative to a lagged level (the "
        "first non-null of these features, boosting from it as init_score): trees cannot "
        "extrapolate, so a trend or a store above the training range would be capped "
        "otherwise. Empty: learn the target itself",
    )
    seeds: int = Field(
        1,
        ge=1,
        le=16,
        description="train this many boosters with seeds seed, seed+1, ... and average "
        "them (a seed bag: less variance from row and feature sampling); stored as one "
        "LightGBM model holding all their trees. Costs this many times the final fits",
    )
    train_on_positive_target: bool = Field(
        False,
        description="fit only on rows with target > 0 (for data where an open day without "
        "sales is a recording anomaly, not demand; keep false where zero demand is real)",
    )

    @property
    def lgbm_params(self) -> dict[str, float | int | str | bool]:
        return {**DEFAULT_LGBM_PARAMS, **self.params}


class GateSettings(_Strict):
    """Quality gate of a newly trained model (blocking checks on ``region_model``)."""

    metric: Literal["mape", "rmspe", "wape"] = "mape"
    max_value: float = Field(0.45, gt=0, description="the metric must not exceed this")
    min_reduction_vs_baseline: float = Field(
        0.40, le=1, description="required reduction of the metric vs the historical average"
    )
    reduction_waived_below: float = Field(
        0.06, ge=0, description="no reduction required when the metric is already below this"
    )
    require_beats_seasonal_naive: bool = True
    tolerance_vs_approved: float = Field(
        0.05, ge=0, description="may be at most this much (relative) worse than the approved"
    )
    stale_after_days: int = Field(
        60, ge=1, description="warn when a forecast's model was trained this long before"
    )


class DatasetSpec(_Strict):
    """A whole dataset: its sources, frequency and forecasting horizon."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    description: str = ""
    frequency: Literal["daily", "weekly"] = "daily"
    horizon: int = Field(42, ge=1, le=366, description="forecast horizon in periods")
    sources: dict[str, SourceSpec]
    lags: tuple[int, ...] = Field(
        default=(),
        description="extra target lags in periods (each must be >= horizon); default: "
        "horizon, horizon+7, horizon+14 ... for daily data",
    )
    rolling_windows: tuple[int, ...] = (7, 28, 91, 364)
    season_length: int = Field(
        7, ge=1, description="periods in the seasonal cycle of the seasonal-naive baseline"
    )
    derived_features: dict[str, str] = Field(
        default_factory=dict,
        description="extra numeric features as DuckDB SQL expressions over the feature "
        "table's columns (store attributes, calendar, exogenous inputs); reviewed "
        "configuration like code, and they must not read the target",
    )
    thresholds: Thresholds = Thresholds()
    model: ModelSettings = ModelSettings()
    gate: GateSettings = GateSettings()

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        for name in self.sources:
            # source names become folder names and asset keys (see naming.require_safe_key)
            if not _SOURCE_NAME.fullmatch(name):
                raise ValueError(
                    f"source name {name!r} must be lower-case ASCII letters/digits/_, "
                    "starting with a letter or digit"
                )
        kinds = [s.kind for s in self.sources.values()]
        by_kind = {k: [n for n, s in self.sources.items() if s.kind == k] for k in kinds}
        for kind in ("sales", "stores"):
            if kinds.count(kind) != 1:
                raise ValueError(
                    f"exactly one {kind!r} source is required, found {by_kind.get(kind, [])}"
                )
        for kind in set(kinds):
            if kinds.count(kind) > 1:
                raise ValueError(f"more than one {kind!r} source: {by_kind[kind]}")
        has_region = "region" in self.source("stores").columns or "store_regions" in kinds
        if not has_region:
            raise ValueError(
                "regions come from a 'region' column in the stores source or a "
                "store_regions source; neither is declared"
            )
        for name, expr in self.derived_features.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
                raise ValueError(f"derived feature name {name!r} must be lower_snake_case")
            if re.search(r"\b(target|y_open|lag_\w+|roll_\w+)\b", expr):
                raise ValueError(f"derived feature {name!r} reads the target: {expr!r}")
        short = [lag for lag in self.lags if lag < self.horizon]
        if short:
            raise ValueError(
                f"lags {short} are shorter than the horizon {self.horizon}: "
                "they would leak future actuals into multi-step forecasts"
            )
        return self

    def source(self, kind: str) -> SourceSpec:
        """The source of a kind (``sales``, ``stores``...); KeyError if not declared."""
        return self.sources[self.source_name(kind)]

    def source_name(self, kind: str) -> str:
        for name, src in self.sources.items():
            if src.kind == kind:
                return name
        raise KeyError(f"dataset {self.name!r} declares no {kind!r} source")

    def has(self, kind: str) -> bool:
        return any(s.kind == kind for s in self.sources.values())

    @property
    def period_days(self) -> int:
        return 7 if self.frequency == "weekly" else 1

    @property
    def target_lags(self) -> tuple[int, ...]:
        if self.lags:
            return self.lags
        h = self.horizon
        if self.frequency == "daily":
            # same weekday one, two and three weeks past the horizon, and a year back
            first = h + (-h) % 7
            return tuple(sorted({h, first, first + 7, first + 14, 364} - {0}))
        return (h, h + 1, h + 4, 52) if h < 52 else (h,)


def load_spec(spec: str | Path) -> DatasetSpec:
    """Load a spec by shipped name (``sample``, ``rossmann``) or by YAML file path.

    Raises SpecError naming the file and each bad field.
    """
    path = Path(spec)
    if not path.suffix and not path.is_file():
        path = SPECS_DIR / f"{spec}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))
        raise SpecError(f"no spec file {path} (shipped specs: {shipped})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SpecError(f"{path}: {problems}") from exc
