"""Webhook notifications against real HTTP servers on loopback: one that answers, one that
is slow, and a port where nothing listens."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from search.notify import DELIVERY_WAIT_S, Notifier, search_message
from tests.services.conftest import free_port


class Webhook:
    """A loopback HTTP server that keeps the JSON bodies posted to it."""

    def __init__(self, delay_s: float = 0.0) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def test_a_message_reaches_the_webhook(webhook):
    notifier = Notifier(webhook.url)
    notifier.send(search_message("nightly", "finished", test_accuracy=0.9722,
                                 champion={"changed": True, "version": "4",
                                           "reason": "no champion yet"},
                                 run_link="http://mlflow:5000/#/experiments/1/runs/abc"))
    notifier.wait()
    (message,) = webhook.received
    assert message["text"].startswith("convsearch: search nightly finished; best model's "
                                      "test accuracy 0.9722; champion changed to version 4")
    assert message["text"].endswith("\nhttp://mlflow:5000/#/experiments/1/runs/abc")
    assert message["status"] == "finished" and message["champion"]["changed"] is True


def test_a_slow_or_absent_webhook_never_holds_up_the_search(caplog):
    slow = Webhook(delay_s=10)
    try:
        started = time.monotonic()
        for url in (slow.url, f"http://127.0.0.1:{free_port()}/nobody"):
            notifier = Notifier(url)
            notifier.send(search_message("s", "failed", detail="every trial failed"))
            notifier.wait()
        assert time.monotonic() - started < 2 * DELIVERY_WAIT_S + 1
    finally:
        slow.close()
    assert "was not told of the search" in caplog.text  # the refused one, as a warning


def test_no_url_sends_nothing():
    notifier = Notifier(None)
    notifier.send({"text": "x"})
    notifier.wait(0)
    assert notifier._threads == []
