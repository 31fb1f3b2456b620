"""How the emulator's records show a callback URL: without what may be a token.

A receiver's URL often carries its secret in the query string (``?token=...``); a repr
reaches test output, logs and error reporters, so the emulator's records show the URL
without its user info, query string or fragment, while keeping the whole URL as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["body_repr", "url_repr"]


def _shown(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL the emulator could read: show only that there was one
        return "<unreadable URL>"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def url_repr(url: str | None) -> str:
    """Return the repr of *url* without user info, query string or fragment.

    >>> url_repr("http://127.0.0.1:8080/hook?token=secret")
    "'http://127.0.0.1:8080/hook'"
    """
    return repr(None if url is None else _shown(url))


def body_repr(body: Mapping[str, object]) -> str:
    """Return the repr of a create body with its ``callback_url`` shown as :func:`url_repr`.

    >>> body_repr({"prompt": "a fox", "callback_url": "https://h.example/cb?t=secret"})
    "{'prompt': 'a fox', 'callback_url': 'https://h.example/cb'}"
    """
    url = body.get("callback_url")
    if not isinstance(url, str):
        return repr(dict(body))
    return repr({**body, "callback_url": _shown(url)})
