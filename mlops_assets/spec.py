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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

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

    def with_overrides(self, **values: object) -> Self:
        """These settings with each value that is not None put in place, validated again
        (a launchpad or command-line override of the spec); ``ValidationError`` if not."""
        given = {k: v for k, v in values.items() if v is not None}
        return self.model_validate({**self.model_dump(), **given})


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
    none_level: str | None = Field(
        default=None,
        description="for a categorical calendar input of the sales source (e.g. a holiday "
        "type): the level meaning 'none' (e.g. '0'); the features then count the days since "
        "the last and until the next other level (demand builds up before a holiday and "
        "recovers after it)",
    )

    @model_validator(mode="after")
    def _none_level_is_allowed(self) -> ColumnSpec:
        if self.none_level is not None and self.allowed and self.none_level not in self.allowed:
            raise ValueError(f"none_level {self.none_level!r} is not among allowed {self.allowed}")
        return self

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
    ignore_columns: tuple[str, ...] = Field(
        default=(),
        description="file columns known and deliberately not used (e.g. a column that "
        "would leak the target): dropped without a warning",
    )
    unknown_columns: Literal["warn", "quarantine"] = Field(
        default="warn",
        description="a file with columns neither in `columns` nor in `ignore_columns`: "
        "accepted with those columns dropped and named by the raw asset's WARN check "
        "`no_unknown_columns` (warn), or quarantined with reason `unknown_columns` "
        "(quarantine: for feeds whose layout must not change unannounced)",
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

    @property
    def references_stores(self) -> bool:
        """Whether this source's files name stores that must be in the store master
        (validation rejects them otherwise)."""
        return self.kind != "stores" and "store" in self.columns

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
        8,
        ge=1,
        description="the raw sales asset fails its Dagster freshness policy when no sales "
        "file has been ingested for this many days",
    )


# Not extra_trees + 31 leaves (what rossmann's spec uses): on rossmann-100 with these
# defaults otherwise they were as accurate (mean WAPE over three cutoffs 8.24% vs 8.28%,
# RMSPE better at each) in 38% less time (benchmarks/results/accuracy_backtest.json, labels
# dflt_lvl_et31_* vs dflt_lvl_*), but its regions are small (25k rows). On generated regions
# of 253k and 760k rows early stopping chose 4.7x and 3.8x the trees for about the same WAPE
# (10.16% vs 10.31%, 10.15% vs 10.18%): training took 2.4x and 2.6x as long, though a tree
# costs 0.81x (benchmarks/settings_at_scale.py; 31 leaves alone: as long, 10.27%, 10.13%)
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


# LightGBM's names of the objective parameter, and the objectives whose output it reports
# through a link (exp: poisson, gamma, tweedie; sigmoid; softmax), aliases included
OBJECTIVE_ALIASES = ("objective", "objective_type", "app", "application", "loss")
LINKED_OBJECTIVES = frozenset(
    {
        "poisson",
        "gamma",
        "tweedie",
        "binary",
        "cross_entropy",
        "xentropy",
        "cross_entropy_lambda",
        "xentlambda",
        "multiclass",
        "softmax",
        "multiclassova",
        "multiclass_ova",
        "ova",
        "ovr",
    }
)


def objective_of(params: Mapping[str, Any]) -> str | None:
    """The objective LightGBM parameters set, under any of its names (lower case), or None."""
    lowered = {str(k).lower(): v for k, v in params.items()}
    given = [str(lowered[k]).lower() for k in OBJECTIVE_ALIASES if k in lowered]
    return given[0] if given else None


class ModelSettings(_Strict):
    """The reviewed, fixed training configuration of the per-region models."""

    params: dict[str, float | int | str | bool] = Field(
        default_factory=lambda: dict(DEFAULT_LGBM_PARAMS),
        description="LightGBM parameters (merged over the defaults)",
    )
    num_boost_round: int = Field(3000, ge=1)
    early_stopping_rounds: int = Field(
        100,
        ge=1,
        description="the probe stops after this many rounds without a better inner-window "
        "score. On rossmann-100 (benchmarks/accuracy_backtest.py, three cutoffs) 50 saved "
        "18-27% of a training's boosting rounds for an RMSPE worse at every cutoff (9.33% vs "
        "9.28%, 13.61% vs 13.54%, 11.24% vs 11.24% with MAPE 8.35% vs 8.33%); 25 saved "
        "27-47% for 1.1-1.6% worse RMSPE",
    )
    probe_learning_rate_multiplier: float = Field(
        1.0,
        ge=1.0,
        le=10.0,
        description="the probe that picks the number of trees boosts at this many times "
        "the model's learning rate, with the patience and the round cap divided by it, and "
        "its chosen number of trees is multiplied by it for the fits that follow (trees x "
        "learning rate held constant): a faster probe. 1 (default): the probe boosts as the "
        "model does. On rossmann-100 (benchmarks/accuracy_backtest.py, three cutoffs) 2 cut "
        "the training's wall time by 19-31% for an RMSPE worse at every cutoff (9.31% vs "
        "9.28%, 13.64% vs 13.54%, 11.35% vs 11.24%), 4 by 27-34% for 9.34%, 13.72%, 11.30%: "
        "the scaled tree counts fall short of the model's own optimum",
    )
    reuse_trees_days: int = Field(
        7,
        ge=0,
        le=365,
        description="a retrain of a region with an approved model boosts that model's number "
        "of trees instead of running the probe that picks it, while the probe that picked "
        "it saw data ending at most this many days before the retrain's and the LightGBM "
        "parameters, model inputs and probe settings are the same (weekly retrains: every "
        "other one probes); 0: every training runs its probe. On rossmann-100 "
        "(benchmarks/tree_reuse_value.py, three cutoffs, every region) the counts of the "
        "models of 7 days before gave a pooled holdout WAPE of 8.62% / 7.01% / 6.88% "
        "against 8.64% / 7.02% / 6.95% with the own probe (RMSPE 11.27% / 13.52% / 9.22% vs "
        "11.25% / 13.54% / 9.28%) in 20.0 / 30.8 / 41.0 s of training against 25.6 / 32.8 "
        "/ 50.3 s; those of 28 days before 8.65% / 6.91% / 6.89% in 22.6 / 55.6 / 44.5 s "
        "(their counts were larger). The probe's count is noisy (a region's varies by 2-3x "
        "from week to week) where the error is flat",
    )
    final_fit: Literal["continue", "refit"] = Field(
        "continue",
        description="how the artifact is fitted on all history, holdout included: "
        "'continue' boosts the evaluation model further on all history for "
        "final_fit_tree_share of its trees (the artifact then holds the model the gate "
        "measured, and its first fit is not paid twice); 'refit' fits it again from scratch "
        "with the evaluation model's number of trees. On rossmann-100 "
        "(benchmarks/refit_value.py --warm-start-shares, the 42 days after three cutoffs, "
        "benchmarks/results/warm_refit_value.json) 'continue' at 0.35 had a mean WAPE of "
        "7.78% and RMSPE of 10.23% against the refit's 7.81% and 10.27%, for 44% of the "
        "refit's seconds (0.25: 7.82% / 10.28% for 34%; 0.15: 7.87% / 10.35%; 0.5: 7.76% "
        "/ 10.19% for 58%). Per cutoff it was better at 2015-03-27 (WAPE 7.69% vs 7.87%) "
        "and a little worse at the other two (8.13% vs 8.06%, 7.53% vs 7.50%)",
    )
    final_fit_tree_share: float = Field(
        0.35,
        gt=0,
        le=1,
        description="with final_fit 'continue': the trees boosted on all history, as a "
        "share of the evaluation model's (see final_fit)",
    )
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
        "otherwise. Empty: learn the target itself (required with an objective whose output "
        "LightGBM transforms: poisson, gamma, tweedie, binary, multiclass)",
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

    @model_validator(mode="after")
    def _level_features_need_a_raw_output(self) -> ModelSettings:
        """A lagged level is added to the model's raw output: an objective that reports
        its output through a link (exp, sigmoid, softmax) would have the level added to
        the transformed prediction, so every forecast would be wrong without an error."""
        objective = objective_of(self.params)
        if self.level_features and objective in LINKED_OBJECTIVES:
            raise ValueError(
                f"objective {objective!r} reports its output through a link function, and "
                "level_features boost from a level added to the raw output: use an "
                "objective without a link (regression, huber, fair, quantile, l1) or set "
                "model.level_features: [] to learn the target itself"
            )
        return self


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


class RetentionSettings(_Strict):
    """How many old model versions keep their artifacts (``ModelRegistry.prune``)."""

    keep_archived: int = Field(
        4,
        ge=0,
        description="previously approved versions kept loadable as rollback targets, newest "
        "first (the weekly recalibration archives one a week: 4 = a month back)",
    )
    keep_rejected: int = Field(
        2, ge=0, description="rejected versions kept loadable for inspection, newest first"
    )


class TuningSettings(_Strict):
    """Budget and pruning of a region's hyper-parameter search (``mlops_assets.tuning``).

    The budget bounds one tuning run; the study itself persists and later runs continue it.
    """

    n_trials: int = Field(20, ge=1, le=10_000, description="trials per tuning run (at most)")
    timeout_seconds: float = Field(
        300,
        gt=0,
        le=7 * 24 * 3600,
        description="no new trial starts after this many seconds (a running one finishes)",
    )
    seed: int = Field(0, ge=0, description="sampler seed (offset by the study's trial count)")
    pruner: Literal["median", "none"] = Field(
        "median", description="stop a trial whose validation curve is worse than the median"
    )
    pruner_startup_trials: int = Field(
        5, ge=0, description="completed trials before any trial is pruned"
    )
    pruner_warmup_rounds: int = Field(
        50, ge=0, description="boosting rounds of a trial before it may be pruned"
    )
    report_every: int = Field(
        10,
        ge=1,
        description="report the validation metric every this many boosting rounds (each "
        "report is one write to the study storage)",
    )


# features that move with the calendar or grow by construction: shown in drift tables but
# never alerted on (a weekly chunk of "month" always differs from a whole-year reference)
DEFAULT_DRIFT_IGNORED: tuple[str, ...] = (
    "dow",
    "day_of_month",
    "month",
    "week_of_year",
    "day_of_year",
    "year",
    "event_*",
    "open*",
    "*_run_day",
    "*_run_left",
    "series_*",
    "item_mean",
    "roll_mean_364",
    "ly_level",
)


# features computed from the target's own history: missing whenever the day they look back
# to was closed (every holiday and refurbishment echoes 42..364 days later) and beyond the
# training range whenever demand grows or peaks above last year's. The model copes with both
# (NaN-aware trees; the level offset for levels above the training range), so they are kept
# out of data-quality alerts, where they would report the calendar and the trend, not the
# data. Their drift is still watched (``DEFAULT_DRIFT_IGNORED`` applies there).
DEFAULT_QUALITY_IGNORED: tuple[str, ...] = (
    "lag_*",
    "roll_mean_*",
    "ly_*",
    "series_*",
    "item_mean",
)


class ForecastSettings(_Strict):
    """Batch scoring (the ``forecast`` asset)."""

    explain_series: int = Field(
        10,
        ge=0,
        description="the forecast asset stores the top Shapley contributions of every "
        "forecast row of at most this many series per region (the same series at every "
        "origin: those whose store/item hash lowest); `mlops-assets explain` computes any "
        "other series' on demand. Exact TreeSHAP costs milliseconds a row on rossmann-100's "
        "models and was 93% of a scoring pass there (17.0 of 18.2 s), so the stored sample "
        "is small and the rest is on demand",
    )


class MonitoringSettings(_Strict):
    """Drift, data-quality and model-quality monitoring, and the rules that keep false
    alarms down (see ``mlops_assets.monitoring``)."""

    ignore_features: tuple[str, ...] = Field(
        (),
        description="extra feature names or glob patterns kept out of drift alerts (added "
        "to the built-in calendar / expanding-history features)",
    )
    continuous_method: Literal["jensen_shannon", "kolmogorov_smirnov", "hellinger"] = (
        "jensen_shannon"
    )
    categorical_method: Literal["jensen_shannon", "chi2", "l_infinity", "hellinger"] = (
        "jensen_shannon"
    )
    min_chunk_rows: int = Field(
        20, ge=1, description="weekly chunks with fewer rows raise no alert (too noisy)"
    )
    stand_out_ratio: float = Field(
        1.5,
        ge=1,
        description="a region's drift (value / nannyml threshold) must exceed the median "
        "of all regions in the same week by this factor: a seasonal shift that moves every "
        "region alike is not an alert",
    )
    min_control_regions: int = Field(
        3, ge=1, description="fewest other regions needed for the cross-region comparison"
    )
    fleet_gap_std: float = Field(
        3.5,
        gt=0,
        description="region-level inputs (weather) are compared as their gap to the fleet "
        "median of the same day; alert when a week's mean gap leaves mean +- this many "
        "standard deviations of the reference weeks",
    )
    persistence_weeks: int = Field(
        2, ge=1, description="a signal alerts only after this many consecutive weeks"
    )
    min_quality_rate: float = Field(
        0.10,
        gt=0,
        le=1,
        description="a data-quality finding (missing, unseen, out of range) must affect at "
        "least this share of a week's rows",
    )
    ndcg_threshold: float = Field(
        0.90, gt=0, le=1, description="attribution drift alert below this NDCG"
    )
    attribution_stand_out_ratio: float = Field(
        2.0,
        ge=1,
        description="a region's Shapley-ranking loss (1 - NDCG) must be this many times the "
        "other regions' median: losses are small and noisy with a few dozen sampled rows "
        "(measured on the sample data with the holdout ranking as reference, in January: "
        "the most seasonal region at 1.9x the median)",
    )
    attribution_reference: Literal["same_season", "training"] = Field(
        "same_season",
        description="rank attributions against the same weeks a year earlier in the "
        "training window (holiday weeks have their own drivers every year) or against the "
        "ranking saved with the model (its holdout)",
    )
    attribution_sample_rows: int = Field(
        30,
        ge=10,
        description="rows sampled per week for Shapley values, on each side (the week, and "
        "the same season a year earlier). Exact TreeSHAP costs about 10 ms a row on a "
        "1,600-tree rossmann-100 model and was three quarters of a region's drift_report "
        "at 50 rows. On rossmann-100's replay (benchmarks/drift_replay.py, 20 weeks x 12 "
        "regions, four scenarios) 30 and 50 rows raised the same alerts (no false alarm, "
        "one raw attribution finding a scenario) and the first monitoring pass took 227 s "
        "against 279 s (results/drift_replay_attribution_30.json, _50.json)",
    )
    dle_top_features: int | None = Field(
        3,
        ge=0,
        description="the nannyml DLE estimator learns the error from the prediction and "
        "this many of the model's most important features (None: all), plus its weather "
        "and promotion inputs when it learns from a backtest. Fitted on a few hundred "
        "holdout rows, all 46 features made it blind to the prediction level (the drill's "
        "sample data)",
    )
    estimate_backtest_folds: int = Field(
        0,
        ge=0,
        le=52,
        description="the DLE error model learns from out-of-sample forecasts of this many "
        "horizon-long folds before the holdout (rolling origin, one more fit per fold at "
        "training), so it has seen the model err in every season and at the inputs a drift "
        "moves (a warm spell, a promotion-heavy month); its estimate is then scaled to the "
        "model's holdout error. 0 (default): the holdout alone. Measured on rossmann-100, "
        "8 folds made training x2.79 slower and the weekly estimate follow the realized "
        "RMSE less closely (rank correlation 0.30 against 0.61, median error 0.244 against "
        "0.223; benchmarks/results/backtest_cost.json, drift_replay*.json)",
    )
    estimate_backtest_min_train_share: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="a backtest fold counts only when its model learns from at least this "
        "share of the rows the holdout's model learns from: models fitted on much less "
        "history err more, and the error model would learn their inexperience",
    )
    dle_params: dict[str, int | float] = Field(
        default_factory=lambda: {
            "n_estimators": 100,
            "learning_rate": 0.05,
            "num_leaves": 7,
            "min_child_samples": 40,
        },
        description="LightGBM parameters of nannyml DLE's error model: small and smooth, "
        "as it learns from a few thousand rows at most (nannyml's defaults follow noise)",
    )
    estimate_support_min_importance: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="inputs from outside the region's sales history (weather, promotions) "
        "carrying at least this share of the model's mean |Shapley| are checked against "
        "the training range: a week whose rows take one beyond it is marked as outside "
        "the range the DLE estimate can judge",
    )
    quality_signal: Literal["realized", "estimated"] = Field(
        "realized",
        description="model-quality breach from realized performance (actuals) or from the "
        "label-free nannyml DLE estimate",
    )
    quality_degradation: float = Field(
        1.5,
        gt=1,
        description="breach when a week's error exceeds the model's holdout error by this "
        "factor (and stands out from the other regions)",
    )
    quality_immediate_degradation: float = Field(
        3.0,
        gt=1,
        description="a week whose error exceeds the holdout error by this factor (and stands "
        "out) breaches at once, without waiting for persistence: a concept drift that only "
        "shows every other week (promotions in a fortnightly rhythm) would never persist",
    )
    max_analysis_weeks: int = Field(26, ge=1, description="weeks of recent data examined")
    drift_reference_weeks: int | None = Field(
        52,
        ge=4,
        description="nannyml's univariate and multivariate drift compare with this many of "
        "the reference's last weeks (None: all of it; data quality always uses all of it, "
        "the range the model was trained on). Their fit scores every reference week once per "
        "feature to set its thresholds, so it costs time in proportion to the weeks. A year "
        "holds every season once; on rossmann-100 (benchmarks/drift_replay.py, 4 scenarios x "
        "12 regions x 20 weeks) 52 weeks raised the same alerts in the same weeks as all "
        "~135 weeks, no false alarm, in 32% less time per replay (40 s against 59 s)",
    )
    reference_max_rows: int = Field(
        50_000,
        ge=1000,
        description="the monitoring reference saved with each model (reference.parquet) "
        "holds at most this many of its fitted rows: above it, a seeded sample of every week "
        "(about 80 bytes a row with rossmann's 71 columns: ~4 MB per version at the cap; the "
        "largest rossmann-100 region has 22,552 rows, 1.7 MB)",
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
    tuning: TuningSettings = TuningSettings()
    retention: RetentionSettings = RetentionSettings()
    forecast: ForecastSettings = ForecastSettings()
    monitoring: MonitoringSettings = MonitoringSettings()

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
    shipped = sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))
    if not path.suffix and not path.is_file():
        if str(spec) not in shipped:
            raise SpecError(
                f"unknown spec {str(spec)!r}: the shipped specs are {shipped}; "
                "or give the path of a YAML file"
            )
        path = SPECS_DIR / f"{spec}.yaml"
    if path.is_dir():
        raise SpecError(f"spec {path} is a folder, not a YAML file")
    if not path.is_file():
        raise SpecError(f"no spec file {path} (shipped specs: {shipped})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:  # unreadable, or not text
        raise SpecError(f"{path}: cannot be read as UTF-8 text: {exc}") from exc
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SpecError(f"{path}: {problems}") from exc
