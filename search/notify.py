"""Webhook notifications: a JSON message (Slack-compatible: its ``text`` is the message)
when a search finishes, fails or is stopped, and whether the champion changed.

Sending never fails or holds up the search: each message goes from a daemon thread with
a short timeout, and the process waits for it at most `DELIVERY_WAIT_S` at the end.
A webhook that is down costs a warning in the log, nothing more.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from typing import Any

from search.secrets import redacted_webhook

logger = logging.getLogger(__name__)

#: Seconds one delivery may take, and that a search waits for its last one at most.
SEND_TIMEOUT_S = 5.0
DELIVERY_WAIT_S = 3.0


class Notifier:
    """Posts to one webhook URL; none (no URL) sends nothing."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._threads: list[threading.Thread] = []

    def send(self, message: dict[str, Any]) -> None:
        """Post `message` in the background."""
        if not self.url:
            return
        thread = threading.Thread(target=self._post, args=(message,), daemon=True,
                                  name="convsearch-notify")
        thread.start()
        self._threads.append(thread)

    def wait(self, timeout_s: float = DELIVERY_WAIT_S) -> None:
        """Give the messages in flight up to `timeout_s` in all to be delivered."""
        import time

        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _post(self, message: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url, data=json.dumps(message).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:
                response.read()
        except (OSError, ValueError) as exc:  # down, slow, refused, or a bad URL
            # Only the kind of failure: some messages quote the URL's path, its secret.
            reason = getattr(exc, "reason", exc)
            if not isinstance(reason, str):
                reason = getattr(reason, "strerror", None) or type(reason).__name__
            logger.warning("the webhook %s was not told of the search: %s",
                           redacted_webhook(self.url), reason)


def search_message(name: str, status: str, *, detail: str = "",
                   test_accuracy: float | None = None, champion: dict[str, Any] | None = None,
                   run_link: str | None = None) -> dict[str, Any]:
    """The message for a search that ended with `status` (finished, failed, stopped):
    a one-paragraph ``text`` for chat, and the same facts as fields for programs."""
    words = [f"convsearch: search {name} {status}"]
    if test_accuracy is not None:
        words.append(f"best model's test accuracy {test_accuracy:.4f}")
    if champion is not None:
        words.append(("champion changed to version " if champion["changed"]
                      else "champion kept; new model is version ") + champion["version"]
                     + f" ({champion['reason']})")
    if detail:
        words.append(detail)
    text = "; ".join(words)
    if run_link:
        text += f"\n{run_link}"
    message: dict[str, Any] = {"text": text, "search": name, "status": status,
                               "test_accuracy": test_accuracy, "run": run_link}
    if champion is not None:
        message["champion"] = champion
    return message
