"""``benchmarks/results.json`` (merged, never clobbered) and ``BENCHMARKS.md`` rendered from it.

Every benchmark script calls ``update_results`` with its own sections (``scale``, ``peer``,
``curve``, ``many_regions``, ``rossmann``, ``regions_per_run``, ``prod_vs_dev``); each
section records the exact command, the git commit and the machine it was measured on.
``BENCHMARKS.md`` is regenerated from the whole file after every update, so every number in
it comes from a recorded command.

    .venv/bin/python benchmarks/report.py   # re-render BENCHMARKS.md from results.json
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results.json"
MARKDOWN = REPO_ROOT / "BENCHMARKS.md"


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "HEAD")
    # the results files themselves do not make a measurement "dirty"
    dirty = git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":!benchmarks/results.json",
        ":!BENCHMARKS.md",
    )
    return commit + ("-dirty" if dirty else "")


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gb": mem_gb,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }


def command() -> str:
    """The command as typed from the repo root."""
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        exe = exe.relative_to(REPO_ROOT)
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(REPO_ROOT)
    return shlex.join([str(exe), str(script), *sys.argv[1:]])


# the commit the benchmark started on (the scripts import this module first thing)
START_COMMIT = git_commit()


def print_and_write(report: dict, out: Path) -> None:
    """A single-file benchmark's figures, one per line, and the same as JSON at ``out``."""
    for key, value in report.items():
        print(f"{key}: {value}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


def provenance() -> dict:
    return {
        "command": command(),
        "commit": START_COMMIT,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }


@contextlib.contextmanager
def ref_worktree(commit: str) -> Iterator[Path]:
    """A temporary git worktree of ``commit`` (to measure an earlier commit in the same run
    as HEAD), removed afterwards, pass or fail."""
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        tree = Path(tmp) / "ref"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), commit],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT, check=False
            )


def load_results(path: Path = RESULTS) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def update_results(sections: dict, path: Path = RESULTS, markdown: Path = MARKDOWN) -> dict:
    """Merge ``sections`` into results.json (``curve`` merges by row count; every other
    section is replaced as a whole), set the top-level commit, re-render BENCHMARKS.md."""
    results = load_results(path)
    for key, value in sections.items():
        if key == "curve":
            results.setdefault("curve", {}).update(value)
        else:
            results[key] = value
    results["commit"] = git_commit()
    text = json.dumps(results, indent=2, sort_keys=True)
    path.write_text(text + "\n")
    # rendered from what was written (keys sorted), so a re-render gives the same page
    markdown.write_text(render(json.loads(text)))
    print(f"written to {path.relative_to(REPO_ROOT)} and {markdown.relative_to(REPO_ROOT)}")
    return results


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(rows: list[tuple], header: tuple) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return out


CPU_KINDS = ("run_worker", "code_server", "daemon", "webserver", "cli", "other", "harness")


# the direct pass's stages that do a deployment window's work (the training runs also score;
# the direct monitoring stage also computes the fleet alerts, monitoring_job's step)
DIRECT_STAGES_OF_WINDOW = {
    "ingest": ("ingest",),
    "features": ("features",),
    "training": ("training", "scoring"),
    "monitoring_backfill": ("monitoring",),
}


# stages and windows in the pipeline's order (results.json keeps its keys sorted)
PIPELINE_ORDER = (
    "ingest",
    "features",
    "training",
    "scoring",
    "monitoring",
    "monitoring_backfill",
    "total",
)


def in_pipeline_order(figures: dict) -> list[tuple[str, Any]]:
    """``figures``' items in ``PIPELINE_ORDER``; other keys after them, as they come."""
    rank = {name: i for i, name in enumerate(PIPELINE_ORDER)}
    return sorted(figures.items(), key=lambda item: rank.get(item[0], len(rank)))


def _cpu_lines(section: dict) -> list[str]:
    """Where the cores went in each stage's window (``cpu_s``, from ``ProcessSampler``),
    beside the CPU the direct pass spent on the same work (``direct_cpu_s``)."""
    cpu = section.get("cpu_s")
    if not cpu:
        return []
    direct = section.get("direct_cpu_s") or {}
    lines = [
        "",
        "CPU seconds in each stage's window (first run queued -> last run ended), by process "
        "kind; capacity = wall x cores; machine busy = every process on the machine, "
        "idle = capacity - machine busy; direct = the one-process pass's CPU seconds for "
        "the same work (training: training + scoring; monitoring: with the fleet alerts):",
        "",
    ]
    header = ("window", "capacity", *CPU_KINDS, "machine busy", "idle", "direct")

    def direct_cpu(window: str) -> float | None:
        stages = DIRECT_STAGES_OF_WINDOW.get(window, ())
        if not stages or any(direct.get(s) is None for s in stages):
            return None
        return round(sum(direct[s] for s in stages), 1)

    rows = [
        (
            name,
            used.get("capacity"),
            *(used.get(k) for k in CPU_KINDS),
            used.get("machine_busy"),
            used.get("idle"),
            direct_cpu(name),
        )
        for name, used in in_pipeline_order(cpu)
    ]
    return lines + _table(rows, header)


def _provenance_lines(section: dict) -> list[str]:
    m = section.get("machine") or {}
    return [
        "",
        f"Command (from the repo root): `{section.get('command', '?')}`  ",
        f"Commit: `{section.get('commit', '?')}`, measured {section.get('measured_at', '?')} on "
        f"{m.get('nproc', '?')} cores ({m.get('cpu_model', '?')}), {m.get('ram_gb', '?')} GB "
        f"RAM, load average {m.get('load_avg_1m_at_end', '?')} at the end.",
    ]


def render(results: dict) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/report.py` from `benchmarks/results.json`: every figure below",
        "comes from the command written under its section, run on the commit and machine",
        "named there (a `-dirty` commit had uncommitted changes). Load average is reported",
        "because runs on a shared machine are noisy. Re-run a command to refresh its section.",
        "",
        "Install the benchmark-only dependencies (the peer, `mlforecast`) with `make bench-env`.",
        "",
    ]
    scale = results.get("scale")
    if scale:
        lines += [
            "## Scale (through Dagster, as a user runs it)",
            "",
            f"{_fmt(scale.get('rows'))} sales rows, {_fmt(scale.get('series'))} series, "
            f"{_fmt(scale.get('regions'))} regions, {_fmt(scale.get('days'))} days "
            f"(preset `{scale.get('preset')}`). Total wall from dropping the files to the end "
            f"of the monitoring run: **{_fmt(scale.get('total_wall_s'))} s**.",
            "",
        ]
        direct = scale.get("direct_stage_s") or {}
        over = scale.get("dagster_overhead_s") or {}
        rows = [
            (stage, secs, direct.get(stage), over.get(stage))
            for stage, secs in in_pipeline_order(scale.get("stage_s") or {})
        ]
        lines += _table(rows, ("stage", "Dagster wall s", "direct s", "overhead s"))
        lines += [
            "",
            "Stage definitions: " + scale.get("stage_definitions", ""),
            "",
            *([f"Caveat: {scale['direct_caveat']}.", ""] if scale.get("direct_caveat") else []),
            "Peak RSS (GB) per process kind (largest single process), and of all the "
            "deployment's processes at one sample. These GB are GiB (2^30 bytes: /proc and "
            "getrusage figures divided by 1024^3), as the peer's figure is:",
            "",
        ]
        rss = scale.get("rss") or {}
        rows = [
            (k, v, (rss.get("processes_by_kind") or {}).get(k))
            for k, v in (rss.get("peak_rss_gb_by_kind") or {}).items()
        ]
        rows.append(("all processes (concurrent)", rss.get("peak_rss_gb_concurrent_total"), None))
        rows.append(("direct (one process)", scale.get("direct_peak_rss_gb"), 1))
        lines += _table(rows, ("process kind", "peak RSS GB", "processes"))
        lines += _cpu_lines(scale)
        if scale.get("run_overheads"):
            lines += ["", "Per-run costs by job (seconds):", ""]
            rows = [
                (
                    job,
                    o.get("runs"),
                    o.get("mean_queued_s"),
                    o.get("mean_launch_s"),
                    o.get("mean_run_s"),
                    o.get("mean_in_run_outside_steps_s"),
                    o.get("mean_overhead_per_run_s"),
                )
                for job, o in scale["run_overheads"].items()
            ]
            header = (
                "job",
                "runs",
                "queued",
                "launch",
                "run",
                "in run, outside steps",
                "overhead per run",
            )
            lines += _table(rows, header)
            lines += [
                "",
                "Means per run. queued: created -> RUN_STARTING (waiting for one of the two "
                "run slots); launch: RUN_STARTING -> RUN_START (process start, code location "
                "load); overhead per run: launch + time in the run outside its steps.",
            ]
        if scale.get("failed_runs"):
            lines += ["", "Failed runs: " + ", ".join(scale["failed_runs"])]
        lines += _provenance_lines(scale)
        lines.append("")
    peer = results.get("peer")
    if peer:
        lines += [
            "## Peer: mlforecast with the same LightGBM settings (same run, rows and split)",
            "",
        ]
        lines += _table(
            [
                ("sales rows of that run", peer.get("rows")),
                ("our training stage (Dagster) s", peer.get("ours_training_s")),
                ("our training (direct) s", peer.get("ours_training_direct_s")),
                ("peer fit s", peer.get("fit_s")),
                ("peer predict s", peer.get("predict_s")),
                ("train time ratio (ours / peer fit)", peer.get("train_time_ratio")),
                ("direct train time ratio", peer.get("train_time_ratio_direct")),
                ("our WAPE", peer.get("ours_wape")),
                ("peer WAPE", peer.get("peer_wape")),
                ("holdout rows scored", peer.get("scored_rows")),
            ],
            ("figure", "value"),
        )
        lines += ["", peer.get("notes", "")]
        lines += _provenance_lines(peer)
        lines.append("")
    curve = results.get("curve")
    if curve:
        stages = ["ingest", "features", "training", "scoring", "monitoring", "total"]
        lines += ["## Curve: rows -> Dagster wall seconds per stage", ""]
        rows = [
            (int(r), *[c.get(s) for s in stages])
            for r, c in sorted(curve.items(), key=lambda kv: int(kv[0]))
        ]
        lines += _table(rows, ("rows", *stages))
        lines += [
            "",
            "Each row comes from the `scale` command of its size (see the commands "
            "recorded in each entry of `curve` in results.json).",
        ]
        lines.append("")
    many = results.get("many_regions")
    if many:
        lines += ["## Many regions", ""]
        lines += _table(
            [
                (k, v)
                for k, v in many.items()
                if not isinstance(v, dict | list) and k not in ("command", "commit", "measured_at")
            ],
            ("figure", "value"),
        )
        for key in ("graphql_s", "stage_s", "run_overheads_refresh", "rss"):
            if many.get(key):
                lines += ["", f"`{key}`: `{json.dumps(many[key], sort_keys=True)}`"]
        lines += _provenance_lines(many)
        lines.append("")
    ross = results.get("rossmann")
    if ross:
        lines += ["## rossmann-100 end to end through Dagster", ""]
        if ross.get("skipped"):
            lines += [f"Skipped: {ross['skipped']}"]
        else:
            lines += [f"Total wall: **{_fmt(ross.get('total_wall_s'))} s**", ""]
            waits = ross.get("backfill_launch_waits_s")
            if waits:
                lines += [
                    "Of which the backfill daemon's wait before it launched a backfill's runs "
                    "(its 30 s loop; 0-30 s by its phase): "
                    + ", ".join(f"{k} {_fmt(v)} s" for k, v in in_pipeline_order(waits)),
                    "",
                ]
            direct = ross.get("direct_stage_s") or {}
            lines += _table(
                [(s, v, direct.get(s)) for s, v in in_pipeline_order(ross.get("stage_s") or {})],
                ("stage", "Dagster wall s", "direct s"),
            )
            lines += _cpu_lines(ross)
            if ross.get("models"):
                lines += ["", f"Models: `{json.dumps(ross['models'], sort_keys=True)}`"]
        lines += _provenance_lines(ross)
        lines.append("")
    per_run = results.get("regions_per_run")
    if per_run:
        lines += [
            f"## Regions per backfill run ({per_run['dataset']}, {per_run['regions']} regions)",
            "",
            "The asset backfill of region_model + forecast over every region, once per "
            "`MLOPS_REGIONS_PER_RUN` value in one deployment (ingest and features once, "
            f"{_fmt(per_run.get('ingest_and_features_s'))} s). Span: first run created -> "
            "last run ended; latency: the backfill daemon's ticks around it (launch -> done, "
            "minus the span); compute: the summed `compute_s` of the materializations.",
            "",
        ]
        cols = (
            "runs_span_s",
            "span_ratio_to_1",
            "backfill_latency_s",
            "runs",
            "mean_launch_s",
            "mean_in_run_outside_steps_s",
            "training_compute_s",
            "scoring_compute_s",
        )
        rows = [(n, *(p.get(c) for c in cols)) for n, p in per_run["passes"].items()]
        lines += _table(rows, ("regions per run", *cols))
        lines += ["", f"Least span: **{per_run['best']}** regions per run."]
        lines += _provenance_lines(per_run)
        lines.append("")
    prod = results.get("prod_vs_dev")
    if prod:
        lines += [
            f"## The prod profile against dev ({prod['dataset']}, {prod['regions']} regions)",
            "",
            "The same data and backfill (region_model + forecast over every region, the UI's "
            "asset backfill) on dev (SQLite, steps in the run's process, two run slots) and "
            "on prod (PostgreSQL, steps on two Celery workers of one pool process each; "
            "PostgreSQL and Redis on 127.0.0.1"
            + (
                "; data tables and model artifacts on S3, moto's server on 127.0.0.1"
                if prod.get("prod_storage_root") == "s3"
                else ""
            )
            + ").",
            "",
        ]
        cols = (
            "ingest_and_features_s",
            "backfill_wall_s",
            "backfill_runs_span_s",
            "backfill_runs",
            "peak_rss_gb_concurrent_total",
            "feature_tables_below_workspace",
        )
        rows = [(p, *(prod[p].get(c) for c in cols)) for p in ("dev", "prod")]
        lines += _table(rows, ("profile", *cols))
        lines += [
            "",
            f"prod / dev: backfill wall **{prod['prod_to_dev_backfill_wall']}**, runs span "
            f"**{prod['prod_to_dev_runs_span']}**.",
        ]
        lines += _provenance_lines(prod)
        lines.append("")
    imports = results.get("import_time")
    if imports:
        lines += ["## Loading the code location (`import mlops_assets.definitions`)", ""]
        rows = [
            (
                "HEAD",
                imports["head"]["median_s"],
                ", ".join(imports["head"]["heavy_modules_loaded"]),
            )
        ]
        if imports.get("ref"):
            ref = imports["ref"]
            rows.append((ref["commit"], ref["median_s"], ", ".join(ref["heavy_modules_loaded"])))
        lines += _table(rows, ("commit", "median s (fresh process)", "heavy libraries loaded"))
        if imports.get("ratio_head_over_ref") is not None:
            lines += [
                "",
                f"Ratio HEAD / {imports['ref']['commit']}: {imports['ratio_head_over_ref']}",
            ]
        lines += _provenance_lines(imports)
        lines.append("")
    manifest = results.get("manifest_scale")
    if manifest:
        head = manifest["head"]
        lines += [
            f"## Ingestion manifest with {head['files']:,} ingested files",
            "",
            "One ingest run of that many small sales files, then a landing-sensor tick with a "
            "warm cursor (nothing new; its JSON in and out), the size of the cursor it leaves "
            "(Dagster stores it with every tick), listing the ingested files and opening a "
            "warehouse connection: the process's first (connect_s) and a later one "
            "(connect_warm_s, which reuses the views of the same files; - where not measured), "
            "medians.",
            "",
        ]
        figures = (
            "ingest_s",
            "ingest_ms_per_file",
            "sensor_tick_s",
            "cursor_bytes",
            "ingested_files_s",
            "connect_s",
            "connect_warm_s",
        )
        ref = manifest.get("ref") or {}
        ratio = manifest.get("ratio_head_over_ref") or {}
        rows = [(f, head.get(f), ref.get(f), ratio.get(f)) for f in figures]
        lines += _table(rows, ("figure", "HEAD", ref.get("commit", "ref"), "ratio HEAD / ref"))
        lines += _provenance_lines(manifest)
        lines.append("")
    lines += [f"Top-level commit of results.json: `{results.get('commit', '?')}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    MARKDOWN.write_text(render(load_results()))
    print(f"rendered {MARKDOWN.relative_to(REPO_ROOT)}")
