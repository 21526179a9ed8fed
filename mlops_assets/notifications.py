"""Notifications people act on: run failures, failed gates, model approvals.

Every notification is appended to the feed, a table of the workspace's state database
(``mlops_assets.storage.notification_tables``: SQLite in dev, PostgreSQL in prod, so runs
on any worker write to one feed; ``mlops-assets notifications`` prints it). When a webhook URL is
configured (``MLOPS_WEBHOOK_URL``, read through Dagster's ``EnvVar``), the notification is
also POSTed as Slack-compatible JSON (``{"text": ...}`` plus the structured fields). A
webhook that is down, slow or failing, or a notification that cannot be formatted, never
fails the pipeline: the failure is recorded in the feed as a ``delivery_failed`` entry
(and logged when even the feed cannot be written).

The webhook URL is a secret (whoever has it can post to the channel): a URL that is not
http(s) is refused when the code location loads, with a message that names the setting
but never shows its value, and delivery errors never repeat it.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.settings import SettingsError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mlops_assets.workspace import Workspace

WEBHOOK_ENV = "MLOPS_WEBHOOK_URL"
_log = logging.getLogger(__name__)

KINDS = (
    "run_failure",
    "check_failure",
    "drift_alert",
    "quality_breach",
    "tuning_started",
    "model_pending_approval",
    "model_approved",
    "model_rejected",
    "delivery_failed",
)


@dataclass
class Notification:
    kind: str
    message: str
    region: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown notification kind {self.kind!r}; expected one of {KINDS}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "region": self.region,
            "details": self.details,
            "at": self.at,
        }

    def slack_payload(self) -> dict[str, Any]:
        where = f" [{self.region}]" if self.region else ""
        return {"text": f"mlops_assets {self.kind}{where}: {self.message}", **self.to_dict()}


def check_webhook_url(url: str | None, setting: str = WEBHOOK_ENV) -> str | None:
    """The webhook URL if it is a usable http(s) URL, None if unset; ``SettingsError``
    otherwise. The message names ``setting`` and what is wrong, never the value: the URL
    is a secret and start-up errors end up in logs and terminals."""
    if not url:
        return None
    problem = None
    if any(c.isspace() or not c.isprintable() for c in url):
        problem = "contains whitespace or control characters"
    else:
        try:
            parts = urllib.parse.urlsplit(url)
            _ = parts.port  # a port that is not a number raises here, not at delivery
        except ValueError:
            problem = "cannot be parsed as a URL"
        else:
            if parts.scheme.lower() not in ("http", "https"):
                problem = "is not an http:// or https:// URL"
            elif not parts.hostname:
                problem = "has no host name"
    if problem is not None:
        raise SettingsError(f"{setting} {problem} (its value is not shown: it is a secret)")
    return url


class Notifier:
    """Writes the feed and, if configured, posts to a webhook; never raises on delivery."""

    def __init__(
        self,
        database_url: str,
        webhook_url: str | None = None,
        timeout_s: float = 5.0,
        *,
        setting: str = WEBHOOK_ENV,
    ) -> None:
        self.database_url = database_url
        # refused here too, so a resource or CLI built with a bad URL fails before any work
        self.webhook_url = check_webhook_url(webhook_url, setting)
        self.timeout_s = timeout_s

    @classmethod
    def for_workspace(
        cls, workspace: Workspace, webhook_url: str | None = None, timeout_s: float = 5.0
    ) -> Notifier:
        """The notifier of a workspace's feed; a feed still in files is imported once."""
        from mlops_assets.storage.notification_tables import import_notification_files

        notifier = cls(workspace.state_database_url, webhook_url, timeout_s)
        import_notification_files(notifier.engine, *cls.legacy_files(workspace))
        return notifier

    @staticmethod
    def legacy_files(workspace: Workspace) -> tuple[Path, Path, Path]:
        """Where workspaces from before the state database kept the feed, the run failure
        groups and the alerting state (imported once, then unused)."""
        feed = workspace.notifications_feed
        return (
            feed,
            feed.with_name("run_failure_groups.json"),
            workspace.root / "monitoring" / "_fleet" / "alerting.json",
        )

    @property
    def engine(self) -> Engine:
        from mlops_assets.storage.database import engine_for

        return engine_for(self.database_url)

    def send(self, notification: Notification, *, deliver: bool = True) -> bool:
        """Record and deliver; returns whether the webhook (if any) accepted it. Never
        raises for a delivery problem: a notification must not fail the run it reports.
        ``deliver=False`` records it in the feed only (a repeat already announced)."""
        record = notification.to_dict()
        self._append(record)
        if not self.webhook_url or not deliver:
            return True
        error = self._deliver(notification)
        if error is not None:
            self._append(
                Notification(
                    "delivery_failed",
                    f"webhook delivery of {notification.kind} failed: {error}",
                    notification.region,
                    {"original": record},
                ).to_dict()
            )
        return error is None

    def _deliver(self, notification: Notification) -> str | None:
        """POST the notification; None when accepted, else what went wrong (the URL, a
        secret, removed from the text)."""
        try:
            body = json.dumps(notification.slack_payload(), default=str).encode()
            request = urllib.request.Request(
                self.webhook_url,
                data=body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:  # a 4xx/5xx answer
            return f"HTTP {exc.code} {exc.reason}"
        except Exception as exc:
            # any failure (DNS, refused, timeout, a payload that cannot be serialised, a
            # malformed answer) is recorded, never raised
            reason = getattr(exc, "reason", None)  # URLError wraps the socket error
            text = f"{type(exc).__name__}: {reason if reason is not None else exc}"
            return self._without_url(text)
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _without_url(self, text: str) -> str:
        """``text`` with the webhook URL, its host and its path replaced by ``<webhook>``:
        urllib's error texts can quote them, and the feed is read by people."""
        url = self.webhook_url or ""
        parts = urllib.parse.urlsplit(url)
        for secret in (url, parts.netloc, parts.path):
            if len(secret) > 1:
                text = text.replace(secret, "<webhook>")
        return text

    def _append(self, record: dict[str, Any]) -> None:
        """Add one record to the feed; a record that cannot be serialised is written with
        its details replaced by the error, and a feed that cannot be written (the database
        unreachable) is logged: recording a notification never raises."""
        from mlops_assets.storage.notification_tables import append_notification

        try:
            try:
                json.dumps(record, default=str)
            except Exception as exc:  # e.g. a cycle, an object str() fails on
                unserialisable = f"{type(exc).__name__}: {exc}"
                record = {**record, "details": {"unserialisable_details": unserialisable}}
            append_notification(self.engine, record)
        except Exception:  # database down, disk full: log, never fail the run
            _log.exception("could not record a %s notification in the feed", record.get("kind"))

    def read(
        self, *, after_id: int = 0, kind: str | None = None, region: str | None = None
    ) -> list[dict[str, Any]]:
        """The feed in the order it was written (each record with its ``id``)."""
        from mlops_assets.storage.notification_tables import read_notifications

        return read_notifications(self.engine, after_id=after_id, kind=kind, region=region)


# a failure of the same kind within this long after the last one posted is recorded in the
# feed and counted, not posted again: ten runs failing for one cause make one message
REPEAT_WINDOW_S = 3600.0


def failure_signature(job: str, step: str | None, error_line: str) -> str:
    """What makes two run failures "of one kind": the job, the failing step and the error's
    first line with the numbers in it (pids, run ids, counts, durations) masked."""
    masked = re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|\d+", "#", error_line)
    return f"{job}|{step or '-'}|{masked}"


class FailureGroups:
    """Which failure signatures were posted when, and how many repeats since (the
    ``run_failure_groups`` table of the state database)."""

    def __init__(self, database_url: str, window_s: float = REPEAT_WINDOW_S) -> None:
        self.database_url = database_url
        self.window_s = window_s

    def record(self, signature: str, now: float) -> tuple[bool, int]:
        """(post this failure?, failures of this kind recorded without a post since the
        last post). A post goes out for a new kind, or once the window has passed."""
        from mlops_assets.storage.database import engine_for
        from mlops_assets.storage.notification_tables import record_failure

        return record_failure(engine_for(self.database_url), signature, now, self.window_s)
