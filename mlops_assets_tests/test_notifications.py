"""Notifier: always the feed (the state database); a webhook when configured, surviving its outages.

Every failing webhook here is real: a server on 127.0.0.1 that refuses, never answers,
answers 500 or answers garbage (no network beyond loopback; the DNS failure is the
resolver's own error, raised without asking a name server)."""

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mlops_assets.notifications import (
    REPEAT_WINDOW_S,
    FailureGroups,
    Notification,
    Notifier,
    check_webhook_url,
    failure_signature,
)
from mlops_assets.settings import SettingsError

SECRET = "T0KEN-s3cr3t"  # stands for the secret part of a real webhook URL


def _db(tmp_path) -> str:
    """A fresh state database (the feed's home) below ``tmp_path``."""
    return f"sqlite:///{tmp_path}/state/mlops.sqlite"


def _serve(status: int = 200) -> tuple[HTTPServer, list[dict]]:
    """An HTTP server on 127.0.0.1 answering every POST with ``status``; records bodies."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    """A webhook receiver on 127.0.0.1 that records every JSON body it gets."""
    server, received = _serve(200)
    yield f"http://127.0.0.1:{server.server_port}/hook/{SECRET}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def failing_receiver() -> Iterator[tuple[str, list[dict]]]:
    """A webhook on 127.0.0.1 that reads each post and answers HTTP 500."""
    server, received = _serve(500)
    yield f"http://127.0.0.1:{server.server_port}/hook/{SECRET}", received
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


@pytest.fixture
def garbage_port() -> Iterator[int]:
    """A port whose server answers every connection with bytes that are not HTTP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def answer() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed by the fixture
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"SPAM SPAM SPAM\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def test_feed_only_without_webhook(tmp_path):
    notifier = Notifier(_db(tmp_path))
    assert notifier.send(Notification("model_approved", "Nord:v1 approved", "Nord"))
    [entry] = notifier.read()
    assert entry["kind"] == "model_approved" and entry["region"] == "Nord"


def test_webhook_receives_slack_compatible_json(tmp_path, receiver):
    url, received = receiver
    notifier = Notifier(_db(tmp_path), webhook_url=url)
    assert notifier.send(Notification("run_failure", "train_job failed", "Ost", {"run_id": "abc"}))
    [body] = received
    assert body["text"] == "mlops_assets run_failure [Ost]: train_job failed"
    assert body["details"] == {"run_id": "abc"} and body["kind"] == "run_failure"
    assert [e["kind"] for e in notifier.read()] == ["run_failure"]


def _assert_failure_recorded(notifier: Notifier, kind: str) -> dict:
    """The notification and one ``delivery_failed`` entry are in the feed; the secret URL
    appears nowhere in it. Returns the failure entry."""
    assert [e["kind"] for e in notifier.read()] == [kind, "delivery_failed"]
    assert SECRET not in json.dumps(notifier.read())
    failure = notifier.read()[1]
    assert failure["message"].startswith(f"webhook delivery of {kind} failed: ")
    return failure


def test_receiver_down_is_logged_not_raised(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/hook/{SECRET}"
    notifier = Notifier(_db(tmp_path), webhook_url=url, timeout_s=1)
    assert notifier.send(Notification("model_pending_approval", "Sud:v2 waits", "Sud")) is False
    failure = _assert_failure_recorded(notifier, "model_pending_approval")
    assert "ConnectionRefused" in failure["message"] or "refused" in failure["message"]
    assert failure["details"]["original"]["kind"] == "model_pending_approval"


def test_receiver_that_never_answers_times_out_and_is_recorded(tmp_path, silent_port):
    url = f"http://127.0.0.1:{silent_port}/hook/{SECRET}"
    notifier = Notifier(_db(tmp_path), webhook_url=url, timeout_s=0.3)
    assert notifier.send(Notification("drift_alert", "Nord drifts", "Nord")) is False
    failure = _assert_failure_recorded(notifier, "drift_alert")
    assert "timed out" in failure["message"].lower() or "Timeout" in failure["message"]


def test_http_500_is_recorded_with_its_status(tmp_path, failing_receiver):
    url, received = failing_receiver
    notifier = Notifier(_db(tmp_path), webhook_url=url)
    assert notifier.send(Notification("quality_breach", "Ost breaches", "Ost")) is False
    assert len(received) == 1  # it was posted, the receiver failed
    failure = _assert_failure_recorded(notifier, "quality_breach")
    assert "HTTP 500" in failure["message"]


def test_answer_that_is_not_http_is_recorded(tmp_path, garbage_port):
    url = f"http://127.0.0.1:{garbage_port}/hook/{SECRET}"
    notifier = Notifier(_db(tmp_path), webhook_url=url, timeout_s=2)
    assert notifier.send(Notification("model_rejected", "West:v3 rejected", "West")) is False
    failure = _assert_failure_recorded(notifier, "model_rejected")
    assert "BadStatusLine" in failure["message"]


def test_dns_failure_is_recorded(tmp_path, monkeypatch):
    def no_such_host(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # the resolver's failure as getaddrinfo raises it, without asking any name server
    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    url = f"https://hooks.example.invalid/services/{SECRET}"
    notifier = Notifier(_db(tmp_path), webhook_url=url, timeout_s=1)
    assert notifier.send(Notification("run_failure", "ingest_job failed")) is False
    failure = _assert_failure_recorded(notifier, "run_failure")
    assert "Name or service not known" in failure["message"]
    assert "hooks.example.invalid" not in json.dumps(notifier.read())


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot format me")

    __repr__ = __str__


def test_payload_that_cannot_be_formatted_is_recorded_not_raised(tmp_path, receiver):
    url, received = receiver
    notifier = Notifier(_db(tmp_path), webhook_url=url)
    sent = notifier.send(
        Notification("tuning_started", "Nord tuning", "Nord", {"x": _Unprintable()})
    )
    assert sent is False and received == []
    entry, failure = notifier.read()
    assert entry["kind"] == "tuning_started" and entry["message"] == "Nord tuning"
    assert "cannot format me" in entry["details"]["unserialisable_details"]
    assert failure["kind"] == "delivery_failed" and "cannot format me" in failure["message"]


def test_feed_that_cannot_be_written_is_logged_not_raised(tmp_path, caplog):
    (tmp_path / "blocker").write_text("a file where the feed's folder should be")
    notifier = Notifier(f"sqlite:///{tmp_path}/blocker/state/mlops.sqlite")
    assert notifier.send(Notification("model_approved", "Nord:v1 approved", "Nord"))
    assert "could not record a model_approved notification" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://hooks.example.com/{SECRET}",
        f"hooks.slack.com/services/{SECRET}",
        f"file:///etc/{SECRET}",
        f"javascript:alert('{SECRET}')",
        f"http:///{SECRET}",
        f"https://hooks.example.com:port{SECRET}/x",
        f"https://hooks.example.com/{SECRET}\n",
        f"https://hooks.example.com/ {SECRET}",
    ],
    ids=["ftp", "no-scheme", "file", "javascript", "no-host", "bad-port", "newline", "space"],
)
def test_url_that_is_not_http_is_refused_without_showing_it(tmp_path, url):
    with pytest.raises(SettingsError) as exc:
        check_webhook_url(url)
    assert "MLOPS_WEBHOOK_URL" in str(exc.value) and SECRET not in str(exc.value)
    assert exc.value.__cause__ is None and exc.value.__context__ is None  # no chained repr
    with pytest.raises(SettingsError) as exc:
        Notifier(_db(tmp_path), webhook_url=url)
    assert SECRET not in str(exc.value)


@pytest.mark.parametrize(
    "url", ["https://hooks.slack.com/services/T0/B0/x", "http://127.0.0.1:8080/hook", "", None]
)
def test_http_urls_and_no_url_are_accepted(url):
    assert check_webhook_url(url) == (url or None)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown notification kind"):
        Notification("party", "x")


def test_failures_differing_only_in_numbers_are_one_kind():
    a = failure_signature("train_job", None, "Run worker (pid 1234) is not running")
    b = failure_signature("train_job", None, "Run worker (pid 98) is not running")
    assert a == b
    assert a != failure_signature("train_job", "region_model", "Run worker (pid 98) is not running")
    assert a != failure_signature("features_job", None, "Run worker (pid 98) is not running")


def test_a_kind_is_posted_once_a_window_and_the_next_post_counts_the_repeats(tmp_path):
    groups = FailureGroups(_db(tmp_path))
    kind, other = "train_job|-|timeout", "features_job|x|KeyError: 'date'"
    assert groups.record(kind, now=0.0) == (True, 0)
    assert groups.record(kind, now=10.0) == (False, 1)
    assert groups.record(other, now=11.0) == (True, 0)  # another kind is posted at once
    assert groups.record(kind, now=20.0) == (False, 2)
    assert groups.record(kind, now=REPEAT_WINDOW_S + 1) == (True, 2)
    assert groups.record(kind, now=REPEAT_WINDOW_S + 2) == (False, 1)


def test_a_notification_recorded_without_delivery_is_not_posted(tmp_path, receiver):
    url, received = receiver
    notifier = Notifier(_db(tmp_path), url)
    notifier.send(Notification("run_failure", "first"))
    notifier.send(Notification("run_failure", "again"), deliver=False)
    assert [r["message"] for r in received] == ["first"]
    assert [e["message"] for e in notifier.read()] == ["first", "again"]
