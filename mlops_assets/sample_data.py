"""Deterministic synthetic multi-region retail demand, written as landing files.

Why: the pipeline needs data with the shape and the awkward parts of real retail data
(closures, returns, slow movers with many zeros, regional holidays, region names that need
sanitising) to develop, test and demo against, at any size, without shipping a dataset. It
can also inject known drift into one region so monitoring can be tested against a ground
truth.

Layout written by :func:`generate` (one folder per source, as a data engineer drops them)::

    stores/stores.csv       store master: store_id, region, format, size_sqm, opened, location
    sales/sales_<YYYY>.csv  daily units per store x department (or sales/part-<NNNNN>.parquet)
    weather/weather.csv     daily temperature and precipitation per region (history only)
    events/events.csv       public holidays and special events (empty region = national)
    future/future.csv       the known calendar (open, promo) for the forecast horizon

Every random number comes from a stream seeded by ``(seed, purpose, region, store, ...)`` so
a region's or store's data never depends on another's: drift injected into one region
leaves every other region byte-identical, and the history does not depend on the horizon.
This module deliberately does not import dagster.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import holidays
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DriftKind = Literal["weather_shift", "level_shift", "promo_effect_loss"]
FileFormat = Literal["csv", "parquet"]
DRIFT_KINDS: tuple[str, ...] = ("weather_shift", "level_shift", "promo_effect_loss")
FILE_FORMATS: tuple[str, ...] = ("csv", "parquet")

# Named regions first: one with ", " and one with a non-ASCII letter, so that the
# downstream key sanitising is exercised by the default data.
NAMED_REGIONS: tuple[str, ...] = ("Nord", "Süd", "Rhein, Main", "Ost", "West")
# German subdivision (for public holidays) of each named region, then the states that
# further regions ("Region 06", ...) cycle through.
NAMED_SUBDIVISIONS: tuple[str, ...] = ("NI", "BY", "HE", "SN", "NW")
EXTRA_SUBDIVISIONS: tuple[str, ...] = (
    "BW", "HH", "BE", "RP", "SH", "TH", "ST", "MV", "BB", "SL", "HB",
)  # fmt: skip

SALES_COLUMNS: tuple[str, ...] = ("date", "store_id", "department", "units", "open", "promo")
FUTURE_COLUMNS: tuple[str, ...] = ("date", "store_id", "department", "open", "promo")

# Rows per sales batch when SampleConfig.batch_stores is None: bounds memory for huge configs.
_TARGET_ROWS_PER_BATCH = 2_000_000

# Stream purposes: the second element of every seed sequence.
_S_LAYOUT, _S_DEPTS, _S_STORE, _S_REGION = 1, 2, 3, 4
_S_TEMP, _S_WET, _S_RAIN, _S_EVENTS = 5, 6, 7, 8
_S_CLOSED, _S_REFURB, _S_PROMO, _S_GAMMA, _S_POISSON, _S_RETURNS = 9, 10, 11, 12, 13, 14

# Monday..Sunday demand factors (Sunday applies only to the few stores open on Sundays).
_WEEKLY = np.array([0.92, 0.88, 0.93, 0.98, 1.15, 1.40, 0.65])
_BLACK_FRIDAY_LIFT = 0.5
_STADTFEST_LIFT = 0.3
_RANDOM_CLOSURE_P = 0.003  # per store and day
_REFURB_P = 0.05  # per store and calendar year
_RETURNS_P = 0.0025  # per open row: ~0.2 % of all rows


@dataclass(frozen=True)
class DriftSpec:
    """Known drift injected into one region from ``start`` on (ground truth for monitoring).

    ``weather_shift`` adds ``magnitude`` degrees C to the region's temperature (sales follow
    the weather); ``level_shift`` multiplies its demand by ``1 + magnitude`` (inputs
    unchanged); ``promo_effect_loss`` removes the promotion lift (promo flags unchanged).
    """

    region: str
    start: date
    kind: DriftKind
    magnitude: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.region, str) or not self.region:
            raise ValueError(f"DriftSpec.region must be a region display name, got {self.region!r}")
        if not isinstance(self.start, date) or isinstance(self.start, datetime):
            raise ValueError(f"DriftSpec.start must be a datetime.date, got {self.start!r}")
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"DriftSpec.kind must be one of {DRIFT_KINDS}, got {self.kind!r}")
        if isinstance(self.magnitude, bool) or not isinstance(self.magnitude, int | float):
            raise ValueError(f"DriftSpec.magnitude must be a number, got {self.magnitude!r}")
        if not np.isfinite(self.magnitude):
            raise ValueError(f"DriftSpec.magnitude must be finite, got {self.magnitude!r}")
        if self.kind == "level_shift" and self.magnitude <= -1:
            raise ValueError(
                f"DriftSpec.magnitude must be > -1 for level_shift (demand x (1 + magnitude)), "
                f"got {self.magnitude!r}"
            )


@dataclass(frozen=True)
class SampleConfig:
    """What to generate; the same config (and package versions) gives the same bytes.

    ``batch_stores`` is how many stores are simulated and written together (one parquet part
    per batch); ``None`` picks a batch of about two million rows so memory stays bounded.
    """

    seed: int = 0
    n_regions: int = 5
    n_stores: int = 20
    n_departments: int = 4
    start: date = date(2023, 1, 1)
    days: int = 1095
    horizon_days: int = 42
    drift: tuple[DriftSpec, ...] = ()
    file_format: FileFormat = "csv"
    batch_stores: int | None = None

    def __post_init__(self) -> None:
        def _int(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"SampleConfig.{name} must be an int, got {value!r}")
            if value < minimum:
                raise ValueError(f"SampleConfig.{name} must be >= {minimum}, got {value!r}")

        _int("seed", 0)
        _int("n_regions", 1)
        _int("n_stores", 1)
        _int("n_departments", 1)
        _int("days", 1)
        _int("horizon_days", 0)
        if self.n_stores < self.n_regions:
            raise ValueError(
                f"SampleConfig.n_stores ({self.n_stores}) must be >= n_regions "
                f"({self.n_regions}): every region needs at least one store"
            )
        if self.batch_stores is not None:
            _int("batch_stores", 1)
        if not isinstance(self.start, date) or isinstance(self.start, datetime):
            raise ValueError(f"SampleConfig.start must be a datetime.date, got {self.start!r}")
        if self.start.year < 1900 or self.start.toordinal() + self.days + self.horizon_days + 1 > (
            date(9999, 1, 1).toordinal()
        ):
            raise ValueError(
                f"SampleConfig.start/days/horizon_days give dates outside 1900..9998 "
                f"(start={self.start}, days={self.days}, horizon_days={self.horizon_days})"
            )
        if self.file_format not in FILE_FORMATS:
            raise ValueError(
                f"SampleConfig.file_format must be one of {FILE_FORMATS}, got {self.file_format!r}"
            )
        if isinstance(self.drift, list):
            object.__setattr__(self, "drift", tuple(self.drift))
        if not isinstance(self.drift, tuple) or not all(
            isinstance(d, DriftSpec) for d in self.drift
        ):
            raise ValueError(f"SampleConfig.drift must be a tuple of DriftSpec, got {self.drift!r}")
        names = region_names(self.n_regions)
        for spec in self.drift:
            if spec.region not in names:
                raise ValueError(
                    f"SampleConfig.drift names region {spec.region!r}, which is not one of "
                    f"the {self.n_regions} generated regions {names}"
                )

    @classmethod
    def tiny(cls, **overrides: Any) -> SampleConfig:
        """A config small enough for unit tests (14,400 sales rows, well under a second)."""
        values: dict[str, Any] = dict(n_regions=5, n_stores=12, n_departments=3, days=400)
        values.update(overrides)
        return cls(**values)

    @property
    def end(self) -> date:
        """Last sales date."""
        return self.start + timedelta(days=self.days - 1)

    @property
    def stores_per_batch(self) -> int:
        """Stores simulated and written together."""
        if self.batch_stores is not None:
            return self.batch_stores
        return max(1, _TARGET_ROWS_PER_BATCH // (self.n_departments * self.days))


@dataclass
class GenerationSummary:
    """What :func:`generate` wrote, for logging and for tests."""

    out_dir: Path
    files: list[Path]
    n_rows_sales: int
    regions: list[str]
    stores_per_region: dict[str, int]
    start: date
    end: date

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (paths and dates as strings)."""
        return {
            "out_dir": str(self.out_dir),
            "files": [str(f) for f in self.files],
            "n_rows_sales": self.n_rows_sales,
            "regions": list(self.regions),
            "stores_per_region": dict(self.stores_per_region),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


def region_names(n_regions: int) -> list[str]:
    """Display names of the first ``n_regions`` regions (named ones, then "Region 06", ...)."""
    return [
        NAMED_REGIONS[i] if i < len(NAMED_REGIONS) else f"Region {i + 1:02d}"
        for i in range(n_regions)
    ]


def region_subdivision(region_index: int) -> str:
    """German subdivision whose public holidays region ``region_index`` observes."""
    if region_index < len(NAMED_SUBDIVISIONS):
        return NAMED_SUBDIVISIONS[region_index]
    return EXTRA_SUBDIVISIONS[(region_index - len(NAMED_SUBDIVISIONS)) % len(EXTRA_SUBDIVISIONS)]


def department_profiles(config: SampleConfig) -> pd.DataFrame:
    """Per-department demand parameters (speed is a property of the department).

    Odd departments (D01, D03, ...) are fast movers, even ones slow movers, so any config
    with two or more departments has both.
    """
    d = config.n_departments
    u = _rng(config.seed, _S_DEPTS).random((d, 4))
    fast = np.arange(d) % 2 == 0
    temp_beta = np.where(fast, 0.005 + 0.015 * u[:, 1], 0.005 * u[:, 1])
    temp_beta[0] = 0.03  # the first department is the weather-sensitive one (drinks, ice)
    return pd.DataFrame(
        {
            "department": _department_ids(d),
            "speed": np.where(fast, "fast", "slow"),
            # units per day in a small, average store
            "base_units": np.where(fast, 80 + 250 * u[:, 0], 0.3 + 1.2 * u[:, 0]),
            # multiplicative lift per degree C above 15 C
            "temp_beta": temp_beta,
            "promo_lift": np.where(fast, 0.25 + 0.1 * u[:, 2], 0.1 + 0.1 * u[:, 2]),
            # gamma shape of the gamma-Poisson noise (small = overdispersed, many zeros)
            "noise_shape": np.where(fast, 80 + 80 * u[:, 3], 1.5 + u[:, 3]),
            "season_strength": np.where(fast, 1.0, 0.5),
            "event_scale": np.where(fast, 1.0, 0.4),
            "pre_holiday_lift": np.where(fast, 0.3, 0.1),
        }
    )


def generate(config: SampleConfig, out_dir: Path) -> GenerationSummary:
    """Write the sample dataset for ``config`` into ``out_dir`` (one folder per source).

    Sales are simulated and written a batch of stores at a time, so memory does not grow
    with the number of stores. Stale sales files of an earlier run (``sales_*.csv``,
    ``part-*.parquet``) are removed first so the folder holds exactly one run.
    """
    out_dir = Path(out_dir)
    world = _World(config)
    for sub in ("stores", "sales", "weather", "events", "future"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    for stale in [
        *(out_dir / "sales").glob("sales_*.csv"),
        *(out_dir / "sales").glob("part-*.parquet"),
    ]:
        stale.unlink()

    files = [
        _write_small_csv(world.stores_frame(), out_dir / "stores" / "stores.csv"),
        _write_small_csv(world.weather_frame(), out_dir / "weather" / "weather.csv"),
        _write_small_csv(world.events_frame(), out_dir / "events" / "events.csv"),
    ]
    files += _write_sales_and_future(world, out_dir)
    regions = world.regions
    counts = np.bincount(world.store_region, minlength=config.n_regions)
    return GenerationSummary(
        out_dir=out_dir,
        files=files,
        n_rows_sales=config.n_stores * config.n_departments * config.days,
        regions=list(regions),
        stores_per_region={name: int(counts[i]) for i, name in enumerate(regions)},
        start=config.start,
        end=config.end,
    )


# --------------------------------------------------------------------------------------
# The simulated world: layout, calendars, weather; sales are simulated per store on demand.


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _department_ids(n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"D{i + 1:0{width}d}" for i in range(n)]


def _store_ids(n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"S{i + 1:0{width}d}" for i in range(n)]


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer counts proportional to ``weights``, each at least 1."""
    share = total * weights / weights.sum()
    counts = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    while (counts == 0).any():
        counts[np.argmax(counts)] -= 1
        counts[np.argmin(counts)] += 1
    return counts


def _causal_smooth(z: np.ndarray, phi: float, warmup: int = 40) -> np.ndarray:
    """AR(1)-like unit-variance series from white noise ``z`` (first ``warmup`` are burn-in)."""
    kernel = phi ** np.arange(warmup)
    out = np.convolve(z, kernel)[warmup : len(z)]
    return out / np.sqrt((kernel**2).sum())


def _yearly_factor(doy: np.ndarray) -> np.ndarray:
    """Pre-Christmas peak (mid/late December) and a January dip."""
    return (
        1.0
        + 0.55 * np.exp(-0.5 * ((doy - 351) / 10.0) ** 2)
        - 0.12 * np.exp(-0.5 * ((doy - 15) / 12.0) ** 2)
    )


def _black_friday(year: int) -> date:
    nov1 = date(year, 11, 1)
    first_thursday = nov1 + timedelta(days=(3 - nov1.weekday()) % 7)
    return first_thursday + timedelta(days=22)


class _World:
    """Everything shared by the stores of a run; per-store series come from :meth:`store`."""

    def __init__(self, config: SampleConfig) -> None:
        self.config = c = config
        self.regions = region_names(c.n_regions)
        self.depts = department_profiles(c)
        self.dept_ids = list(self.depts["department"])
        self.store_ids = _store_ids(c.n_stores)
        self.t_hist = c.days
        self.t_total = c.days + c.horizon_days
        self.days = np.arange(self.t_total + 1)  # one extra day: is the day after a holiday?
        self.epoch0 = (c.start - date(1970, 1, 1)).days
        dates64 = np.datetime64(c.start.isoformat(), "D") + self.days
        self.dow = (c.start.weekday() + self.days) % 7
        years = dates64.astype("datetime64[Y]")
        self.doy = (dates64 - years.astype("datetime64[D]")).astype(np.int64) + 1
        self.year = years.astype(np.int64) + 1970
        self.years = list(range(c.start.year, int(self.year[-1]) + 1))
        self.yearly = _yearly_factor(self.doy[: self.t_hist])
        self._layout()
        self._region_params()
        self._calendars()
        self._weather()
        self._drift()

    def day_index(self, d: date) -> int:
        return (d - self.config.start).days

    # -- stores ------------------------------------------------------------------------
    def _layout(self) -> None:
        c = self.config
        rng = _rng(c.seed, _S_LAYOUT)
        weights = np.linspace(1.0, 3.0, c.n_regions) if c.n_regions > 1 else np.ones(1)
        counts = _allocate(c.n_stores, rng.permutation(weights))
        self.store_region = rng.permutation(np.repeat(np.arange(c.n_regions), counts))
        n, d = c.n_stores, c.n_departments
        self.store_large = np.zeros(n, bool)
        self.store_size = np.zeros(n, np.int64)
        self.store_urban = np.zeros(n, bool)
        self.store_opened = np.zeros(n, np.int64)  # day index (negative: before start)
        self.store_sunday_open = np.zeros(n, bool)
        self.store_level = np.zeros((n, d))
        base = self.depts["base_units"].to_numpy()
        for s in range(n):
            rng = _rng(c.seed, _S_STORE, int(self.store_region[s]), s)
            u = rng.random(5)
            effects = rng.standard_normal(1 + d)
            large = u[0] < 0.3
            size = 2200 + 4300 * u[1] if large else 350 + 950 * u[1]
            urban = u[2] < (0.45 if large else 0.65)
            self.store_large[s] = large
            self.store_size[s] = int(round(size, -1))
            self.store_urban[s] = urban
            self.store_opened[s] = -(60 + int(u[3] * 365 * 25))
            self.store_sunday_open[s] = u[4] < (0.15 if urban else 0.03)
            store_effect = np.exp(0.2 * effects[0])
            dept_effect = np.exp(0.15 * effects[1:])
            self.store_level[s] = (
                base
                * (2.4 if large else 1.0)
                * (self.store_size[s] / (4000 if large else 800)) ** 0.4
                * (1.15 if urban else 0.85)
                * store_effect
                * dept_effect
            )

    def stores_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "store_id": self.store_ids,
                "region": [self.regions[r] for r in self.store_region],
                "format": np.where(self.store_large, "large", "small"),
                "size_sqm": self.store_size,
                "opened": [
                    (self.config.start + timedelta(days=int(o))).isoformat()
                    for o in self.store_opened
                ],
                "location": np.where(self.store_urban, "urban", "rural"),
            }
        )

    # -- regions -----------------------------------------------------------------------
    def _region_params(self) -> None:
        c = self.config
        u = np.array([_rng(c.seed, _S_REGION, r).random(5) for r in range(c.n_regions)])
        self.temp_offset = -1.5 + 3.0 * u[:, 0]
        self.temp_amplitude = 8.0 + 3.0 * u[:, 1]
        self.wet_threshold = 0.1 + 0.3 * u[:, 2]  # higher: fewer wet days
        self.growth = -0.03 + 0.09 * u[:, 3]  # per year
        t_years = self.days[: self.t_hist] / 365.25
        self.trend = np.exp(self.growth[:, None] * t_years[None, :])

    def _calendars(self) -> None:
        """Public holidays (closed), the day before them (lift) and special events (lift)."""
        c, n_days = self.config, self.t_total + 1
        first, last = c.start, c.start + timedelta(days=n_days - 1)
        national = holidays.country_holidays("DE", years=self.years, language="de")
        events: list[tuple[date, str, str]] = []
        by_subdiv: dict[str, dict[date, str]] = {}
        self.holiday = np.zeros((c.n_regions, n_days), bool)
        self.event_lift = np.zeros((c.n_regions, n_days))
        for d, name in national.items():
            if first <= d <= last:
                events.append((d, "", str(name)))
                self.holiday[:, self.day_index(d)] = True
        for r, region in enumerate(self.regions):
            sub = region_subdivision(r)
            if sub not in by_subdiv:
                local = holidays.country_holidays("DE", subdiv=sub, years=self.years, language="de")
                by_subdiv[sub] = {d: str(n) for d, n in local.items() if d not in national}
            for d, name in by_subdiv[sub].items():
                if first <= d <= last:
                    events.append((d, region, name))
                    self.holiday[r, self.day_index(d)] = True
        for year in self.years:
            bf = _black_friday(year)
            if first <= bf <= last:
                events.append((bf, "", "Black Friday"))
                self.event_lift[:, self.day_index(bf)] += _BLACK_FRIDAY_LIFT
            for r, region in enumerate(self.regions):
                # a summer Saturday: the first Saturday in June plus 0..16 weeks
                june1 = date(year, 6, 1)
                week = int(_rng(c.seed, _S_EVENTS, r, year).integers(0, 17))
                fest = june1 + timedelta(days=(5 - june1.weekday()) % 7 + 7 * week)
                if first <= fest <= last:
                    events.append((fest, region, "Stadtfest"))
                    self.event_lift[r, self.day_index(fest)] += _STADTFEST_LIFT
        self.events = sorted(set(events))
        self.pre_holiday = np.zeros_like(self.holiday)
        self.pre_holiday[:, :-1] = self.holiday[:, 1:] & ~self.holiday[:, :-1]

    def events_frame(self) -> pd.DataFrame:
        last = self.config.start + timedelta(days=self.t_total - 1)
        rows = [(d.isoformat(), r, e) for d, r, e in self.events if d <= last]
        return pd.DataFrame(rows, columns=["date", "region", "event"])

    def _weather(self) -> None:
        c, n = self.config, self.t_total
        season = -np.cos(2 * np.pi * (self.doy[:n] - 15) / 365.25)
        warm = 40  # burn-in days of the smoothed noise
        temp = np.zeros((c.n_regions, n))
        precip = np.zeros((c.n_regions, n))
        for r in range(c.n_regions):
            noise = _causal_smooth(_rng(c.seed, _S_TEMP, r).standard_normal(n + warm), 0.7)
            temp[r] = 9.5 + self.temp_offset[r] + self.temp_amplitude[r] * season + 2.5 * noise
            wet = _causal_smooth(_rng(c.seed, _S_WET, r).standard_normal(n + warm), 0.5)
            amount = _rng(c.seed, _S_RAIN, r).gamma(0.9, 4.5, n) * (1 + 0.3 * season)
            precip[r] = np.where(wet > self.wet_threshold[r], amount, 0.0)
        self.temp_raw = temp
        self.precip = np.round(precip, 1)

    def _drift(self) -> None:
        """Apply the config's drift to the region arrays (weather) or record it (demand)."""
        c = self.config
        temp = self.temp_raw.copy()
        self.level_mult = np.ones((c.n_regions, self.t_hist))
        self.promo_active = np.ones((c.n_regions, self.t_hist))
        for spec in c.drift:
            r = self.regions.index(spec.region)
            t0 = min(max(self.day_index(spec.start), 0), self.t_total)
            if spec.kind == "weather_shift":
                temp[r, t0:] += spec.magnitude
            elif spec.kind == "level_shift":
                self.level_mult[r, t0:] *= 1.0 + spec.magnitude
            else:
                self.promo_active[r, t0:] = 0.0
        self.temp = np.round(temp, 1)

    def weather_frame(self) -> pd.DataFrame:
        """Weather for history and horizon: the horizon part stands for the weather
        forecast a retailer buys (rossmann-100's weather files also run past its sales)."""
        n, r = self.t_total, self.config.n_regions
        dates = _iso_dates(self.epoch0, n)
        return pd.DataFrame(
            {
                "date": np.tile(dates, r),
                "region": np.repeat(np.array(self.regions, dtype=object), n),
                "temperature_c": self.temp[:, :n].ravel(),
                "precipitation_mm": self.precip[:, :n].ravel(),
            }
        )

    # -- one store's series --------------------------------------------------------------
    def store(self, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Units (D, history), open (total days) and promo (D, total days) of store ``s``."""
        c, d = self.config, self.config.n_departments
        r = int(self.store_region[s])
        n, nh = self.t_total, self.t_hist
        dow = self.dow[:n]
        key = (r, s)

        # calendar: Sundays, regional public holidays, random days, refurbishments
        closed = self.holiday[r, :n].copy()
        if not self.store_sunday_open[s]:
            closed |= dow == 6
        closed |= _rng(c.seed, _S_CLOSED, *key).random(n) < _RANDOM_CLOSURE_P
        refurb = _rng(c.seed, _S_REFURB, *key).random((len(self.years), 3))
        for y, (p, when, length) in enumerate(refurb):
            if p < _REFURB_P:
                t0 = self.day_index(date(self.years[y], 1, 1)) + int(when * 365)
                closed[max(t0, 0) : max(t0 + 14 + int(length * 29), 0)] = True
        is_open = ~closed

        promo = _promo_blocks(_rng(c.seed, _S_PROMO, *key), n, d)

        # demand (history only): shared multiplicative factors (days,) then per department
        prof = self.depts
        opened_age = self.days[:nh] - self.store_opened[s]
        ramp = np.minimum(1.0, 0.6 + 0.4 * opened_age / 365.0)
        footfall = 1.0 - 0.15 * (1.0 - np.exp(-self.precip[r, :nh] / 6.0))
        day_factor = _WEEKLY[dow[:nh]] * self.trend[r] * ramp * footfall * self.level_mult[r]
        warm = np.maximum(self.temp[r, :nh] - 15.0, 0.0)
        lam = (
            self.store_level[s][None, :]
            * day_factor[:, None]
            * self.yearly[:, None] ** prof["season_strength"].to_numpy()[None, :]
            * (1.0 + prof["temp_beta"].to_numpy()[None, :] * warm[:, None])
            * (
                1.0
                + prof["promo_lift"].to_numpy()[None, :]
                * (promo[:nh] * self.promo_active[r][:, None])
            )
            * (1.0 + prof["pre_holiday_lift"].to_numpy()[None, :] * self.pre_holiday[r, :nh, None])
            * (1.0 + prof["event_scale"].to_numpy()[None, :] * self.event_lift[r, :nh, None])
        )
        # gamma-Poisson (negative binomial) counts; (days, D) order keeps prefixes stable
        shape = prof["noise_shape"].to_numpy()
        gamma = _rng(c.seed, _S_GAMMA, *key).gamma(shape, 1.0 / shape, size=(nh, d))
        units = _rng(c.seed, _S_POISSON, *key).poisson(lam * gamma).astype(np.float64)
        units[closed[:nh]] = 0.0
        ret = _rng(c.seed, _S_RETURNS, *key).random((nh, d, 2))
        returns = (ret[..., 0] < _RETURNS_P) & is_open[:nh, None]
        units[returns] = -(1.0 + np.floor(ret[..., 1][returns] * 3.0))
        return units.T, is_open.astype(np.int8), promo.T.astype(np.int8)


def _promo_blocks(rng: np.random.Generator, n_days: int, n_depts: int) -> np.ndarray:
    """(days, D) 0/1 promotions: blocks of 3-10 days, ~20 % of days, per department."""
    n_blocks = n_days // 7 + 2  # a gap plus a block take at least 7 days
    u = rng.random((n_blocks, n_depts, 3))
    gap = 4 + np.floor(-np.log1p(-u[..., 0]) * 22.0).astype(np.int64)
    length = 3 + np.floor(u[..., 1] * 8.0).astype(np.int64)
    offset = np.floor(u[0, :, 2] * 30.0).astype(np.int64) - gap[0]
    ends = offset[None, :] + np.cumsum(gap + length, axis=0)
    starts = ends - length
    flag = np.zeros((n_depts, n_days + 1), np.int64)
    dept = np.broadcast_to(np.arange(n_depts), starts.shape)
    keep = starts < n_days
    np.add.at(flag, (dept[keep], np.clip(starts[keep], 0, n_days)), 1)
    np.add.at(flag, (dept[keep], np.clip(ends[keep], 0, n_days)), -1)
    return (np.cumsum(flag, axis=1)[:, :n_days] > 0).T


# --------------------------------------------------------------------------------------
# Writing


def _iso_dates(epoch0: int, n: int) -> np.ndarray:
    return (np.datetime64("1970-01-01", "D") + epoch0 + np.arange(n)).astype(str).astype(object)


def _write_small_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def _store_batches(world: _World) -> Iterator[tuple[list[int], np.ndarray, np.ndarray, np.ndarray]]:
    """Stores in batches: ids, units (B, D, hist), open (B, total), promo (B, D, total)."""
    n, size = world.config.n_stores, world.config.stores_per_batch
    for first in range(0, n, size):
        stores = list(range(first, min(first + size, n)))
        parts = [world.store(s) for s in stores]
        yield (
            stores,
            np.stack([p[0] for p in parts]),
            np.stack([p[1] for p in parts]),
            np.stack([p[2] for p in parts]),
        )


def _table(
    world: _World,
    stores: list[int],
    t0: int,
    t1: int,
    is_open: np.ndarray,
    promo: np.ndarray,
    units: np.ndarray | None,
    *,
    units_as_text: bool,
) -> pa.Table:
    """Rows store x department x day for days [t0, t1), ordered that way."""
    b, d, n = len(stores), world.config.n_departments, t1 - t0
    per_store = d * n
    store_idx = np.repeat(np.arange(b, dtype=np.int32), per_store)
    dept_idx = np.tile(np.repeat(np.arange(d, dtype=np.int32), n), b)
    day = np.tile(np.arange(t0, t1, dtype=np.int32), b * d) + np.int32(world.epoch0)
    columns: dict[str, pa.Array] = {
        "date": pa.array(day, pa.int32()).cast(pa.date32()),
        "store_id": pa.array([world.store_ids[s] for s in stores]).take(pa.array(store_idx)),
        "department": pa.array(world.dept_ids).take(pa.array(dept_idx)),
    }
    if units is not None:
        u = units[:, :, t0:t1].ravel()
        if units_as_text:  # "12.0": a float on read, like the other float columns
            text = pa.array(u.astype(np.int64)).cast(pa.string())
            columns["units"] = pc.binary_join_element_wise(text, pa.scalar(".0"), "")
        else:
            columns["units"] = pa.array(u, pa.float64())
    open_rows = np.broadcast_to(is_open[:, None, t0:t1], (b, d, n)).ravel()
    columns["open"] = pa.array(open_rows.astype(np.int64))
    columns["promo"] = pa.array(promo[:, :, t0:t1].ravel().astype(np.int64))
    return pa.table(columns)


class _CsvAppender:
    """One CSV file written a batch at a time (plain header, no quoting: values are safe)."""

    def __init__(self, stack: ExitStack, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self._stack = stack
        self._file = stack.enter_context(path.open("wb"))
        self._file.write((",".join(columns) + "\n").encode())
        self._writer: pacsv.CSVWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            options = pacsv.WriteOptions(include_header=False, quoting_style="none")
            self._writer = pacsv.CSVWriter(self._file, table.schema, write_options=options)
            self._stack.callback(self._writer.close)  # runs before the file is closed
        self._writer.write_table(table)


def _write_sales_and_future(world: _World, out_dir: Path) -> list[Path]:
    c = world.config
    sales_dir = out_dir / "sales"
    # history day ranges per calendar year (CSV mode writes one file per year)
    year = world.year[: world.t_hist]
    bounds = np.flatnonzero(np.diff(year)) + 1
    year_ranges = [
        (int(year[t0]), int(t0), int(t1))
        for t0, t1 in zip(np.r_[0, bounds], np.r_[bounds, world.t_hist], strict=True)
    ]
    parts: list[Path] = []
    with ExitStack() as stack:
        future = _CsvAppender(stack, out_dir / "future" / "future.csv", FUTURE_COLUMNS)
        yearly = {}
        if c.file_format == "csv":
            yearly = {
                y: _CsvAppender(stack, sales_dir / f"sales_{y}.csv", SALES_COLUMNS)
                for y, _, _ in year_ranges
            }
        for i, (stores, units, is_open, promo) in enumerate(_store_batches(world)):
            if c.file_format == "csv":
                for y, t0, t1 in year_ranges:
                    yearly[y].write(
                        _table(world, stores, t0, t1, is_open, promo, units, units_as_text=True)
                    )
            else:
                path = sales_dir / f"part-{i:05d}.parquet"
                table = _table(
                    world, stores, 0, world.t_hist, is_open, promo, units, units_as_text=False
                )
                pq.write_table(table, path, compression="zstd")
                parts.append(path)
            future.write(
                _table(
                    world, stores, world.t_hist, world.t_total, is_open, promo, None,
                    units_as_text=False,
                )
            )  # fmt: skip
    sales_files = [a.path for a in yearly.values()] if yearly else parts
    return [*sales_files, future.path]
