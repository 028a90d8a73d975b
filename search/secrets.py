"""Which parts of the URLs a search is given are secret, and the forms of them that may be
shown or stored. The CLI, the request record, log lines and webhook messages call these;
nothing else decides what is secret.

Two URLs carry secrets: a tracking URI with ``user:password@`` in it, and a webhook URL,
whose path and query are the secret of Slack-style hooks. The tracking service's own
credentials travel as MLflow's environment variables instead (`take_credentials`), so the
URI a search records and prints is the one without them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from urllib.parse import SplitResult, unquote, urlsplit

#: What stands where a secret was.
MASK = "***"
#: MLflow's variables for the tracking server's basic auth.
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts if parts.scheme and parts.netloc else None


def _host(parts: SplitResult) -> str:
    return parts.netloc.rpartition("@")[2]


#: ``scheme://user:`` up to the last ``@``: a password as database drivers take it, which
#: may hold characters (``/``, ``?``, ``[``) that URL parsing would take for the path.
_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)(.*)@")


def redacted(url: str) -> str:
    """`url` with the password of its ``user:password@`` (if any) masked; the rest, and
    anything that is not a URL, as given."""
    return _USERINFO_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", url, count=1)


def redacted_webhook(url: str) -> str:
    """A webhook URL as it may be shown: its scheme and host; path, query and credentials
    masked (a Slack hook's path is its secret)."""
    parts = _split(url)
    if parts is None:
        return MASK
    return f"{parts.scheme}://{_host(parts)}/{MASK}"


def redacted_args(args: Sequence[str]) -> list[str]:
    """Command-line arguments as they may be shown: the value of ``--notify`` (``--notify
    URL`` or ``--notify=URL``) as `redacted_webhook`, every other URL `redacted`."""
    shown: list[str] = []
    for arg in args:
        if shown and shown[-1] == "--notify":
            shown.append(redacted_webhook(arg))
        elif arg.startswith("--notify="):
            shown.append("--notify=" + redacted_webhook(arg.partition("=")[2]))
        else:
            flag, equals, value = arg.partition("=")
            shown.append(flag + equals + redacted(value) if equals and flag.startswith("--")
                         else redacted(arg))
    return shown


def take_credentials(uri: str, environ: dict[str, str] | os._Environ = os.environ) -> str:
    """An HTTP(S) tracking URI without its ``user:password@``, the credentials moved into
    MLflow's own variables in `environ` (where MLflow's client reads them). Other URIs
    (a database's, whose driver needs the password in the URI) come back as given, and
    are shown and stored `redacted`."""
    parts = _split(uri)
    # MLflow sends basic auth only with both variables set: a URI with a user alone keeps
    # it, as the HTTP client then uses it.
    if parts is None or parts.scheme not in ("http", "https") or not parts.username \
            or parts.password is None:
        return uri
    environ[USERNAME_ENV] = unquote(parts.username)
    environ[PASSWORD_ENV] = unquote(parts.password)
    return parts._replace(netloc=_host(parts)).geturl()
