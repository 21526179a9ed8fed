"""Notifications people act on: run failures, failed gates, model approvals.

Every notification is appended to a local JSONL feed (``notifications.jsonl`` in the
workspace), which always works and which the UI links to. When a webhook URL is
configured (``MLOPS_WEBHOOK_URL``, read through Dagster's ``EnvVar``), the notification is
also POSTed as Slack-compatible JSON (``{"text": ...}`` plus the structured fields). A
webhook that is down or slow never fails the pipeline: the failure is recorded in the
feed as a ``delivery_failed`` entry.
"""

from __future__ import annotations

import fcntl
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


class Notifier:
    """Writes the feed and, if configured, posts to a webhook; never raises on delivery."""

    def __init__(self, feed: Path, webhook_url: str | None = None, timeout_s: float = 5.0):
        self.feed = Path(feed)
        self.webhook_url = webhook_url or None
        self.timeout_s = timeout_s

    def send(self, notification: Notification) -> bool:
        """Record and deliver; returns whether the webhook (if any) accepted it."""
        self._append(notification.to_dict())
        if not self.webhook_url:
            return True
        body = json.dumps(notification.slack_payload(), default=str).encode()
        request = urllib.request.Request(
            self.webhook_url,
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                ok = 200 <= response.status < 300
                error = None if ok else f"HTTP {response.status}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            self._append(
                Notification(
                    "delivery_failed",
                    f"webhook delivery of {notification.kind} failed: {error}",
                    notification.region,
                    {"original": notification.to_dict()},
                ).to_dict()
            )
        return ok

    def _append(self, record: dict[str, Any]) -> None:
        self.feed.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with open(self.feed, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # whole lines from concurrent runs
            fh.write(line)

    def read(self) -> list[dict[str, Any]]:
        if not self.feed.exists():
            return []
        return [json.loads(line) for line in self.feed.read_text().splitlines() if line]
