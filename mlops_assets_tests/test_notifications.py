"""Notifier: always the local feed; a webhook when configured, surviving its outages."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mlops_assets.notifications import Notification, Notifier


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 that records every JSON body it gets."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_feed_only_without_webhook(tmp_path):
    notifier = Notifier(tmp_path / "notifications.jsonl")
    assert notifier.send(Notification("model_approved", "Nord:v1 approved", "Nord"))
    [entry] = notifier.read()
    assert entry["kind"] == "model_approved" and entry["region"] == "Nord"


def test_webhook_receives_slack_compatible_json(tmp_path, receiver):
    url, received = receiver
    notifier = Notifier(tmp_path / "feed.jsonl", webhook_url=url)
    assert notifier.send(Notification("run_failure", "train_job failed", "Ost", {"run_id": "abc"}))
    [body] = received
    assert body["text"] == "mlops_assets run_failure [Ost]: train_job failed"
    assert body["details"] == {"run_id": "abc"} and body["kind"] == "run_failure"
    assert [e["kind"] for e in notifier.read()] == ["run_failure"]


def test_receiver_down_is_logged_not_raised(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = Notifier(
        tmp_path / "feed.jsonl", webhook_url=f"http://127.0.0.1:{port}/x", timeout_s=1
    )
    assert notifier.send(Notification("model_pending_approval", "Sud:v2 waits", "Sud")) is False
    kinds = [e["kind"] for e in notifier.read()]
    assert kinds == ["model_pending_approval", "delivery_failed"]
    failure = notifier.read()[1]
    assert "ConnectionRefused" in failure["message"] or "refused" in failure["message"]
    assert failure["details"]["original"]["kind"] == "model_pending_approval"


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown notification kind"):
        Notification("party", "x")
