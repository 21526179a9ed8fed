"""Data-quality checks on a region's feature table, as plain functions.

Each check returns a ``CheckOutcome``; the Dagster layer turns them into asset check
results (ERROR severity blocks that region's downstream assets, WARN only reports).
Thresholds come from the dataset spec (``thresholds:``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import duckdb

from mlops_assets.conditioning import KEY, FeatureSet
from mlops_assets.spec import DatasetSpec
from mlops_assets.validation import quote_ident
from mlops_assets.warehouse import sql_literals

Severity = Literal["ERROR", "WARN"]

# the checks on `features`, their severity and what they guard (shown in the UI)
FEATURE_CHECKS: dict[str, tuple[Severity, str]] = {
    "features_schema": ("ERROR", "Key, target and every model feature column is present."),
    "features_unique_keys": ("ERROR", "One row per store x item x date."),
    "features_null_rates": (
        "ERROR",
        "Non-lag features are not null above the threshold (nullable spec columns "
        "and target-derived lags, null at the start of a series, are exempt).",
    ),
    "features_value_ranges": (
        "ERROR",
        "Target within the spec's range on history rows, calendar values valid, no "
        "infinite or negative target-derived features.",
    ),
    "features_row_count_change": (
        "ERROR",
        "Rows did not fall by more than the threshold since the last materialization.",
    ),
    "features_freshness": (
        "WARN",
        "The region's latest actual is close to the dataset's latest actual.",
    ),
    "features_history_length": ("WARN", "Enough history to train a model."),
}


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    severity: Severity
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _outcome(name: str, passed: bool, message: str, **metadata: Any) -> CheckOutcome:
    return CheckOutcome(name, passed, FEATURE_CHECKS[name][0], message, metadata)


def check_features(
    path: Path | str,
    spec: DatasetSpec,
    features: FeatureSet,
    *,
    previous_rows: int | None,
    dataset_last_date: date | None,
) -> list[CheckOutcome]:
    """Run every check in ``FEATURE_CHECKS`` on the feature file at ``path`` on this machine
    (a table is checked in its ``DataStore.staged`` file, before it is published)."""
    t = spec.thresholds
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW f AS SELECT * FROM read_parquet({sql_literals([path])})")
        types = {r[0]: r[1] for r in con.execute("DESCRIBE f").fetchall()}
        out: list[CheckOutcome] = []

        expected = [*KEY, "target", "is_future", *features.all]
        missing = [c for c in expected if c not in types]
        wrong = [c for c in features.numeric if c in types and not _is_numeric(types[c])]
        if types.get("date") not in (None, "DATE"):
            wrong.append("date")
        out.append(
            _outcome(
                "features_schema",
                not missing and not wrong,
                f"missing {missing}, wrong type {wrong}"
                if missing or wrong
                else f"{len(expected)} expected columns present",
                missing=missing,
                wrong_type=wrong,
                n_columns=len(types),
            )
        )
        if missing or wrong:  # the checks below need every column, with its type
            return out

        rows, hist_rows = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT is_future) FROM f"
        ).fetchone()
        dups = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM f GROUP BY store, item, date HAVING count(*) > 1)"
        ).fetchone()[0]
        out.append(
            _outcome(
                "features_unique_keys",
                dups == 0,
                f"{dups} duplicated keys" if dups else f"{rows} unique keys",
                duplicated_keys=dups,
            )
        )

        nullable = _nullable_columns(spec)
        lagged = _target_derived(features)
        checked = [c for c in features.all if c not in nullable and c not in lagged]
        null_rates: dict[str, float] = {}
        if rows and checked:
            exprs = ", ".join(f"avg(({quote_ident(c)} IS NULL)::INT)" for c in checked)
            # future rows are checked when they are scored; here only history counts
            sql = f"SELECT {exprs} FROM f WHERE NOT is_future"
            null_rates = dict(zip(checked, con.execute(sql).fetchone(), strict=True))
        target_nulls = con.execute(
            "SELECT count(*) FROM f WHERE NOT is_future AND target IS NULL"
        ).fetchone()[0]
        too_null = {c: round(r, 4) for c, r in null_rates.items() if (r or 0) > t.max_null_rate}
        out.append(
            _outcome(
                "features_null_rates",
                not too_null and target_nulls == 0,
                (f"null rate above {t.max_null_rate:.0%}: {too_null}; " if too_null else "")
                + (f"{target_nulls} history rows without target" if target_nulls else "")
                or f"{len(checked)} columns within {t.max_null_rate:.0%} nulls",
                over_threshold=too_null,
                history_rows_without_target=target_nulls,
                max_null_rate=t.max_null_rate,
            )
        )

        target_spec = spec.source("sales").columns["target"]
        lo = target_spec.min if target_spec.min is not None else float("-inf")
        hi = target_spec.max if target_spec.max is not None else float("inf")
        problems: dict[str, int] = {}
        problems["target_out_of_range"] = con.execute(
            "SELECT count(*) FROM f WHERE NOT is_future AND (target < $lo OR target > $hi)",
            {"lo": lo, "hi": hi},
        ).fetchone()[0]
        if "dow" in types:
            problems["bad_dow"] = con.execute(
                "SELECT count(*) FROM f WHERE dow NOT BETWEEN 1 AND 7"
            ).fetchone()[0]
        for c in lagged:
            problems[f"{c}_negative_or_inf"] = con.execute(
                f"SELECT count(*) FROM f WHERE {quote_ident(c)} < 0 OR isinf({quote_ident(c)})"
            ).fetchone()[0]
        bad = {k: v for k, v in problems.items() if v}
        out.append(
            _outcome(
                "features_value_ranges",
                not bad,
                f"out of range: {bad}" if bad else "all values in range",
                violations=bad,
            )
        )

        if previous_rows:
            change = (rows - previous_rows) / previous_rows
            ok = change >= -t.max_row_count_drop
            msg = f"{previous_rows} -> {rows} rows ({change:+.1%})"
        else:
            change, ok, msg = None, True, f"{rows} rows (no previous materialization)"
        out.append(
            _outcome(
                "features_row_count_change",
                ok,
                msg,
                rows=rows,
                previous_rows=previous_rows,
                change=change,
                max_drop=t.max_row_count_drop,
            )
        )

        first, last = con.execute(
            "SELECT min(date), max(date) FROM f WHERE NOT is_future"
        ).fetchone()
        lag_days = (dataset_last_date - last).days if (dataset_last_date and last) else None
        out.append(
            _outcome(
                "features_freshness",
                lag_days is not None and lag_days <= t.freshness_days,
                f"latest actual {last}, {lag_days} days before the dataset's latest "
                f"({dataset_last_date}); limit {t.freshness_days}",
                region_last_date=str(last),
                dataset_last_date=str(dataset_last_date),
                days_behind=lag_days,
            )
        )
        span = (last - first).days + 1 if first and last else 0
        out.append(
            _outcome(
                "features_history_length",
                span >= t.min_history_days,
                f"{span} days of history (minimum {t.min_history_days})",
                history_days=span,
                history_rows=hist_rows,
            )
        )
    return out


def _is_numeric(duck_type: str) -> bool:
    return duck_type.split("(")[0] in {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "FLOAT",
        "DOUBLE",
        "DECIMAL",
        "BOOLEAN",
    }


def _nullable_columns(spec: DatasetSpec) -> set[str]:
    """Columns a history source (not the future calendar) declares nullable, and derived
    features (null where their nullable inputs are)."""
    declared = {
        name
        for src in spec.sources.values()
        if src.kind not in ("future", "actuals")
        for name, col in src.columns.items()
        if col.nullable
    }
    return declared | set(spec.derived_features)


def _target_derived(features: FeatureSet) -> list[str]:
    prefixes = ("lag_", "roll_mean_", "series_", "item_mean", "open_rate_", "ly_")
    return [c for c in features.numeric if c.startswith(prefixes)]
