"""A real Dagster deployment for benchmarks, run the way a user runs the platform.

``BenchDeployment`` extends the e2e tests' ``Deployment``
(``mlops_assets_tests/deployment/daemon_support.py``: a temporary DAGSTER_HOME with the
repo's ``dagster.yaml``, a workspace root, ``dagster-daemon run -w workspace.yaml`` in its own
process group) with what a benchmark needs:

- ``MLOPS_ENV=dev`` by default, so the sensors and schedules start with the daemon;
- ``drop``: copies a generated dataset into the landing zone (``landing.drop_dataset``, what
  ``mlops-assets ingest`` does), then ``wait_for_sensor_runs`` waits until the landing
  sensor's ingest runs and the region sensor's feature runs are done;
- ``backfill``: a job backfill over every ``region`` partition with the Dagster CLI, as a
  user types it: ``dagster job backfill -j <job> --all --noprompt -w workspace.yaml``; the
  CLI creates one run per partition (tagged ``dagster/backfill``) and submits them to the
  instance's queued run coordinator, which the daemon dequeues two at a time
  (``max_concurrent_runs: 2`` in dagster.yaml);
- ``monitoring_pass``: an asset backfill over every region of the monitoring assets
  (realized_performance -> drift_report) or, with ``assets=REFRESH_ASSETS``, of the
  refresh's (features -> forecast -> realized_performance -> drift_report, what new data
  starts; one op, so several regions a run, as the region sensor's ``refresh_job`` runs
  take them), then the ``monitoring_job`` run the ``monitoring_sensor`` requests once no
  refresh is running (minimum interval 10 s);
- ``start_webserver`` / ``graphql``: ``dagster-webserver -h 127.0.0.1`` on the same instance
  and timed GraphQL queries against it;
- ``ProcessSampler``: polls /proc every 0.5 s for every process whose environment carries
  this DAGSTER_HOME (daemon, code servers, run workers, webserver, CLI) and keeps each
  process kind's peak RSS, the peak of their concurrent total, and CPU seconds by kind
  over time (with the harness's and the machine's), for a stage's CPU budget;
- ``stage_times``: per-stage wall times read back from the instance (run records and step
  stats), so they are Dagster's own timestamps, not the harness's polling.

``stop()`` kills everything with this DAGSTER_HOME, pass or fail (use ``with``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from mlops_assets.defs.run_status import backfill_work_finished  # noqa: E402
from mlops_assets_tests.deployment.daemon_support import BIN, Deployment  # noqa: E402

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# what a region's refresh materializes (refresh_job's selection)
REFRESH_ASSETS = ("features", "forecast", "realized_performance", "drift_report")
# what monitors models the training backfill has just trained and forecast with: the
# refresh without re-conditioning the features and re-forecasting (nothing new to read)
MONITORING_ASSETS = ("realized_performance", "drift_report")


def process_kind(cmdline: list[str]) -> str:
    """What a deployment process is, from its command line."""
    text = " ".join(cmdline)
    if "dagster-daemon" in text:
        return "daemon"
    if "dagster-webserver" in text:
        return "webserver"
    # the code server starts each run's process with multiprocessing (spawn)
    if "execute_run" in text or "execute_step" in text or "multiprocessing" in text:
        return "run_worker"
    if "api grpc" in text or "code-server" in text or "grpc-health-check" in text:
        return "code_server"
    if "job backfill" in text or "sensor start" in text:
        return "cli"
    return "other"


@dataclass
class ProcessSampler:
    """Peak RSS and CPU seconds of every process of a deployment (matched by DAGSTER_HOME
    in its environ), by process kind, plus this harness process and the whole machine.

    CPU is read from /proc/<pid>/stat (user + system) at each sample; what a process uses
    after its last sample (at most ``interval``) is not counted. ``cpu_seconds(start, end)``
    sums a time window's samples, so a stage's CPU can be set against its capacity
    (wall x cores): the work the run workers did, what Dagster's other processes and the
    harness took, and the idle share."""

    home: Path
    interval: float = 0.5
    peak_by_kind: dict[str, int] = field(default_factory=dict)  # bytes, one process
    peak_total: int = 0  # bytes, all processes at one sample
    processes_seen: dict[str, set] = field(default_factory=dict)
    samples: int = 0
    # (time, CPU seconds by kind since the sample before); kinds also "harness" and
    # "machine_busy" (every process on the machine, from /proc/stat)
    cpu_timeline: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._marker = f"DAGSTER_HOME={self.home}".encode()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        # pid -> (cmdline, kind or None: not ours); looked at again when the command line
        # changes (a child seen between fork and exec still has its parent's environment)
        self._mine: dict[int, tuple[bytes, str | None]] = {}
        self._cpu_ticks: dict[int, int] = {}  # pid -> user + system ticks at its last sample
        self._harness_ticks = 0
        self._machine_busy: int | None = None

    def start(self) -> ProcessSampler:
        self._harness_ticks = _cpu_ticks(os.getpid()) or 0
        self._machine_busy = _machine_busy_ticks()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def _kind(self, pid: int) -> str | None:
        proc = Path("/proc") / str(pid)
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            return None
        cached = self._mine.get(pid)
        if cached is not None and cached[0] == cmd:
            return cached[1]
        try:
            ours = self._marker in (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            ours = False
        parts = [c.decode(errors="replace") for c in cmd.split(b"\0")]
        kind = process_kind(parts) if ours else None
        self._mine[pid] = (cmd, kind)
        return kind

    def sample(self) -> None:
        total = 0
        alive = set()
        cpu: dict[str, float] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            alive.add(pid)
            kind = self._kind(pid)
            if kind is None:
                continue
            stat = _proc_stat(pid)
            if stat is None:
                continue
            ticks, rss = stat
            total += rss
            self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0), rss)
            self.processes_seen.setdefault(kind, set()).add(pid)
            used = ticks - self._cpu_ticks.get(pid, 0)  # a new process: since its start
            self._cpu_ticks[pid] = ticks
            cpu[kind] = cpu.get(kind, 0.0) + used / CLOCK_TICKS
        harness = _cpu_ticks(os.getpid())
        if harness is not None:
            cpu["harness"] = (harness - self._harness_ticks) / CLOCK_TICKS
            self._harness_ticks = harness
        busy = _machine_busy_ticks()
        if busy is not None and self._machine_busy is not None:
            cpu["machine_busy"] = (busy - self._machine_busy) / CLOCK_TICKS
            self._machine_busy = busy
        self.cpu_timeline.append((time.time(), cpu))
        self.peak_total = max(self.peak_total, total)
        self.samples += 1
        # forget dead pids (a reused pid is looked at again)
        for pid in [p for p in self._mine if p not in alive]:
            del self._mine[pid]
            self._cpu_ticks.pop(pid, None)

    def cpu_seconds(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds by process kind in the samples taken from ``start`` to ``end``
        (epoch seconds), with the window's capacity (wall x cores) and its idle share."""
        out: dict[str, float] = {}
        for t, used in self.cpu_timeline:
            if start < t <= end:
                for kind, seconds in used.items():
                    out[kind] = out.get(kind, 0.0) + seconds
        capacity = max(0.0, end - start) * (os.cpu_count() or 1)
        out["capacity"] = capacity
        if "machine_busy" in out:
            out["idle"] = max(0.0, capacity - out["machine_busy"])
        return {k: round(v, 1) for k, v in sorted(out.items())}

    def figures(self) -> dict:
        gb = 1024**3
        return {
            "peak_rss_gb_by_kind": {
                k: round(v / gb, 3) for k, v in sorted(self.peak_by_kind.items())
            },
            "processes_by_kind": {k: len(v) for k, v in sorted(self.processes_seen.items())},
            "peak_rss_gb_concurrent_total": round(self.peak_total / gb, 3),
            "rss_samples": self.samples,
        }


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """A process's user + system CPU ticks and its resident bytes, from one read of
    /proc/<pid>/stat (fields 14, 15 and 24, the last in pages); None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def _cpu_ticks(pid: int) -> int | None:
    """User + system CPU ticks a process has used."""
    stat = _proc_stat(pid)
    return None if stat is None else stat[0]


def _machine_busy_ticks() -> int | None:
    """Every CPU's non-idle ticks since boot (/proc/stat: all but idle and iowait)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return None
    return sum(values) - values[3] - values[4]


def union_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals (time during which any ran)."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


@dataclass
class RunInfo:
    run_id: str
    job: str
    status: str
    partition: str | None
    created: float
    start: float | None
    end: float | None
    tags: dict
    steps: dict[str, tuple[float, float]]  # step key -> (start, end)
    launched: float | None = None  # RUN_STARTING: dequeued and handed to the launcher


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}"""


class BenchDeployment(Deployment):
    """A deployment (daemon, optionally webserver) on a temporary DAGSTER_HOME."""

    def __init__(self, tmp: Path, *, spec: str = "sample", mlops_env: str = "dev") -> None:
        super().__init__(tmp, spec=spec, mlops_env=mlops_env)
        self.webserver: subprocess.Popen | None = None
        self.port: int | None = None
        self.sampler = ProcessSampler(self.home)
        self._instance = None

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> BenchDeployment:
        # SIGTERM (kill PID, a CI timeout) unwinds through __exit__ like Ctrl-C does, so
        # the deployment's processes are killed too (a background job ignores SIGINT)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        self.sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.sampler.stop()
        if self.webserver is not None and self.webserver.poll() is None:
            self.webserver.kill()
            self.webserver.wait(timeout=30)
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None
        super().stop()

    def restart(self, **env: str) -> None:
        """Daemon (with its code server) and webserver again, with these variables set: the
        code location is loaded anew, e.g. with another ``MLOPS_REGIONS_PER_RUN``."""
        if self.webserver is not None and self.webserver.poll() is None:
            self.webserver.kill()
            self.webserver.wait(timeout=30)
        self.webserver = None
        self.kill_daemon()
        self.env.update(env)
        self.start_daemon()

    @property
    def instance(self):
        import dagster as dg

        if self._instance is None:
            self._instance = dg.DagsterInstance.from_config(str(self.home))
        return self._instance

    def start_webserver(self, port: int = 3333, timeout: float = 300) -> float:
        """``dagster-webserver -h 127.0.0.1`` on this instance; seconds until it answers."""
        log = open(self.logs / "webserver.log", "wb")  # noqa: SIM115
        self.port = port
        start = time.monotonic()
        self.webserver = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "workspace.yaml",
            ],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # the code location is loaded once the workspace answers with the repository
        query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
        while time.monotonic() - start < timeout:
            if self.webserver.poll() is not None:
                raise RuntimeError("dagster-webserver exited:\n" + self.webserver_log())
            try:
                data, _ = self.graphql(query, timeout=10)
                if data["data"]["repositoriesOrError"].get("nodes"):
                    return time.monotonic() - start
            except (OSError, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"webserver not ready after {timeout} s\n" + self.webserver_log())

    def webserver_log(self) -> str:
        path = self.logs / "webserver.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 120):
        """POST a GraphQL query to the webserver; (response JSON, seconds)."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = json.loads(resp.read())
        return data, time.perf_counter() - start

    # -- driving the pipeline ----------------------------------------------------------
    def drop(self, source_dir: Path) -> list[str]:
        """Copy a dataset into the landing zone, as ``mlops-assets ingest`` does: the
        deployment's, below its storage root when it has one (reached with its AWS_*
        variables, as its processes reach it)."""
        from mlops_assets.landing import drop_dataset
        from mlops_assets.settings import load_settings
        from mlops_assets.spec import load_spec

        ws = load_settings(self.env).workspace()
        aws = {k: v for k, v in self.env.items() if k.startswith("AWS_")}
        saved = {k: os.environ.get(k) for k in aws}
        os.environ.update(aws)
        try:
            return drop_dataset(load_spec(self.env["MLOPS_SPEC"]), source_dir, ws)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def runs(self, job: str | None = None, *, since: float = 0.0, steps: bool = False):
        import dagster as dg

        records = self.instance.get_run_records(
            filters=dg.RunsFilter(job_name=job) if job else None
        )
        out = []
        for rec in records:
            created = rec.create_timestamp.timestamp()
            if created < since:
                continue
            run = rec.dagster_run
            step_times, launched = {}, None
            if steps and run.is_finished:
                for st in self.instance.get_run_step_stats(run.run_id):
                    if st.start_time and st.end_time:
                        step_times[st.step_key] = (st.start_time, st.end_time)
                starting = self.instance.all_logs(
                    run.run_id, of_type=dg.DagsterEventType.RUN_STARTING
                )
                launched = starting[0].timestamp if starting else None
            out.append(
                RunInfo(
                    run.run_id,
                    run.job_name,
                    run.status.value,
                    run.tags.get("dagster/partition"),
                    created,
                    rec.start_time,
                    rec.end_time,
                    dict(run.tags),
                    step_times,
                    launched,
                )
            )
        return sorted(out, key=lambda r: r.created)

    def busy(self) -> bool:
        """A run is queued, starting or running."""
        import dagster as dg

        active = [
            dg.DagsterRunStatus.QUEUED,
            dg.DagsterRunStatus.NOT_STARTED,
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
        ]
        return bool(self.instance.get_run_records(dg.RunsFilter(statuses=active), limit=1))

    def wait(self, what: str, condition: Callable[[], object], timeout: float, poll=1.0) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if condition():
                return time.monotonic() - start
            if self.daemon is not None and self.daemon.poll() is not None:
                raise RuntimeError(
                    f"the daemon exited while waiting for {what}\n{self.daemon_log()}"
                )
            time.sleep(poll)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}\n{self.daemon_log()}")

    def region_keys(self) -> list[str]:
        return sorted(self.instance.get_dynamic_partitions("region"))

    def wait_for_sensor_runs(self, n_files: int, n_regions: int, timeout: float) -> float:
        """Until every landing file is in the manifest and every region's features are
        materialized after the last raw materialization, with no run in flight."""
        import dagster as dg

        from mlops_assets.spec import load_spec
        from mlops_assets_tests.deployment.daemon_support import manifest_records

        raw_keys = [dg.AssetKey(f"raw_{s}") for s in load_spec(self.env["MLOPS_SPEC"]).sources]

        def done() -> bool:
            records = manifest_records(self.ws_root, self.env.get("MLOPS_DATABASE_URL"))
            if len(records) < n_files or self.busy():
                return False
            regions = self.region_keys()
            if len(regions) < n_regions:
                return False
            # after the latest ingestion of any source (each may have triggered features)
            raw = [
                rec.timestamp
                for key in raw_keys
                for rec in self.instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key), limit=1
                ).records
            ]
            if not raw:
                return False
            last_raw = max(raw)
            feats = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("features")),
                limit=max(1000, 4 * n_regions),
            ).records
            fresh = {r.partition_key for r in feats if r.timestamp > last_raw}
            return fresh >= set(regions)

        return self.wait("ingest and features runs of the sensors", done, timeout, poll=2.0)

    def backfill(self, job: str, timeout: float) -> tuple[str, float]:
        """``dagster job backfill -j job --all --noprompt``; wait for its runs. Returns the
        backfill id and the seconds from the command to the last run's end."""
        start = time.time()
        before = {b.backfill_id for b in self.instance.get_backfills()}
        self.cli(
            "dagster",
            "job",
            "backfill",
            "-w",
            "workspace.yaml",
            "-j",
            job,
            "--all",
            "--noprompt",
            "--tags",
            json.dumps({"mlops/trigger": "benchmark"}),
            timeout=timeout,
        )
        new = [b for b in self.instance.get_backfills() if b.backfill_id not in before]
        if len(new) != 1:
            raise RuntimeError(f"expected one new backfill, found {len(new)}")
        backfill_id = new[0].backfill_id
        expected = len(new[0].partition_names or [])

        def done() -> bool:
            runs = [
                r
                for r in self.runs(job, since=start - 1)
                if r.tags.get("dagster/backfill") == backfill_id
            ]
            return len(runs) >= expected and not self.busy()

        self.wait(f"{job} backfill {backfill_id}", done, timeout, poll=2.0)
        return backfill_id, time.time() - start

    def asset_backfill(self, asset_keys: list[str], timeout: float) -> tuple[str, float]:
        """Backfill assets over every region as the UI does (GraphQL ``launchPartitionBackfill``,
        an asset backfill: the assets' backfill policies apply, which a job backfill ignores);
        wait until its work is done: every partition launched and every run ended, as the
        monitoring sensor judges it (``backfill_work_finished``; the backfill daemon marks
        the backfill done on its next loop, up to 30 s later). Returns the backfill id and
        the seconds from launch to done."""
        if self.webserver is None:
            self.start_webserver()
        start = time.time()
        params = {
            "partitionNames": self.region_keys(),
            "assetSelection": [{"path": [key]} for key in asset_keys],
            "fromFailure": False,
            "tags": [{"key": "mlops/trigger", "value": "benchmark"}],
        }
        data, _ = self.graphql(LAUNCH_BACKFILL, {"params": params})
        launched = data["data"]["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"launchPartitionBackfill: {launched}")
        backfill_id = launched["backfillId"]

        def done() -> bool:
            backfill = self.instance.get_backfill(backfill_id)
            ended = backfill.status.value not in ("REQUESTED", "CANCELING")
            return (ended or backfill_work_finished(self.instance, backfill)) and not self.busy()

        self.wait(f"asset backfill {backfill_id} of {asset_keys}", done, timeout, poll=2.0)
        return backfill_id, time.time() - start

    def backfill_launch_wait(self, backfill_id: str, runs: list[RunInfo]) -> float | None:
        """Seconds from a backfill's submission to its first run's creation: the backfill
        daemon launches runs on its loop, every 30 s (Dagster's, not configurable), so this
        is 0-30 s by the loop's phase, and it is inside ``total_wall_s``."""
        if not runs:
            return None
        submitted = self.instance.get_backfill(backfill_id).backfill_timestamp
        return round(min(r.created for r in runs) - submitted, 2)

    def backfill_runs(self, backfill_id: str, *, steps: bool = False) -> list[RunInfo]:
        return [r for r in self.runs(steps=steps) if r.tags.get("dagster/backfill") == backfill_id]

    def compute_seconds(self, runs: list[RunInfo], asset: str) -> float:
        """Sum of the ``compute_s`` metadata of an asset's materializations in these runs
        (region_model and forecast share one step, so step times cannot tell them apart)."""
        import dagster as dg

        total = 0.0
        for run in runs:
            for entry in self.instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ):
                event = entry.get_dagster_event()
                if event.asset_key.to_user_string() == asset:
                    value = event.materialization.metadata.get("compute_s")
                    total += value.value if value is not None else 0.0
        return total

    def monitoring_pass(self, timeout: float, assets: tuple[str, ...] = MONITORING_ASSETS) -> dict:
        """``assets`` backfilled over every region, then the sensor's ``monitoring_job``
        run."""
        start = time.time()
        backfill_id, backfill_s = self.asset_backfill(list(assets), timeout)

        def monitored() -> bool:
            runs = [r for r in self.runs("monitoring_job", since=start) if r.end is not None]
            return bool(runs) and not self.busy()

        self.wait("the monitoring sensor's monitoring_job run", monitored, timeout, poll=2.0)
        return {
            "monitoring_backfill": backfill_id,
            "backfill_s": backfill_s,
            "total_s": time.time() - start,
        }


# -- reading stage times back from the instance ------------------------------------------


def run_window(runs: list[RunInfo]) -> tuple[float, float] | None:
    """The first run's creation (queued) and the last run's end, epoch seconds."""
    ended = [r for r in runs if r.end is not None]
    if not ended:
        return None
    return min(r.created for r in runs), max(r.end for r in ended)


def span(runs: list[RunInfo]) -> float | None:
    """From the first run's creation (queued) to the last run's end."""
    window = run_window(runs)
    return None if window is None else window[1] - window[0]


def step_union(runs: list[RunInfo], step_prefixes: tuple[str, ...]) -> float:
    """Wall time during which at least one step of these assets was executing."""
    return union_seconds(
        iv for r in runs for key, iv in r.steps.items() if key.startswith(step_prefixes)
    )


def step_sum(runs: list[RunInfo]) -> dict[str, float]:
    """Total step seconds per step key (summed over runs; runs overlap)."""
    out: dict[str, float] = {}
    for r in runs:
        for key, (s, e) in r.steps.items():
            out[key] = out.get(key, 0.0) + (e - s)
    return {k: round(v, 2) for k, v in sorted(out.items())}


def run_overheads(runs: list[RunInfo]) -> dict[str, float | None]:
    """Per run: time queued (created -> RUN_STARTING, waiting for one of the two run
    slots), launch (RUN_STARTING -> RUN_START: process start, code location load), the
    time inside the run outside its steps (event writes, resource setup, teardown), and
    the run's own overhead: launch + outside steps (what a region costs beyond its work)."""
    queued = [r.launched - r.created for r in runs if r.launched is not None]
    launch = [r.start - r.launched for r in runs if r.start is not None and r.launched]
    outside = [
        (r.end - r.start) - sum(e - s for s, e in r.steps.values())
        for r in runs
        if r.start is not None and r.end is not None and r.steps
    ]
    durations = [r.end - r.start for r in runs if r.start is not None and r.end is not None]

    def mean(xs):
        return round(sum(xs) / len(xs), 2) if xs else None

    own = [
        (r.end - r.launched) - sum(e - s for s, e in r.steps.values())
        for r in runs
        if r.launched is not None and r.end is not None
    ]
    return {
        "runs": len(runs),
        "mean_queued_s": mean(queued),
        "mean_launch_s": mean(launch),
        "mean_run_s": mean(durations),
        "mean_in_run_outside_steps_s": mean(outside),
        "mean_overhead_per_run_s": mean(own),
    }


def failed(runs: list[RunInfo]) -> list[str]:
    return [
        f"{r.job}[{r.partition}] {r.status} {r.run_id[:8]}" for r in runs if r.status != "SUCCESS"
    ]


def copy_source(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
