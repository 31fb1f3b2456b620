"""Pages a proxy or CDN in front of the API answers with instead of the API itself.

Seen in the gateway family: 5xx answers as HTML pages (an nginx-style page for 500-504,
a Cloudflare-style page for 520-524), and a Cloudflare 403 "error 1010" page from the file
host for clients whose ``User-Agent`` looks like a script. None of them is a JSON envelope.
"""

from __future__ import annotations

import html
import re
from types import MappingProxyType

__all__ = [
    "SCRIPT_USER_AGENT_WORDS",
    "proxy_error_page",
    "proxy_reason",
    "script_blocked_page",
    "user_agent_is_blocked",
]

_REASONS = MappingProxyType(
    {
        500: "Internal Server Error",
        501: "Not Implemented",
        502: "Bad Gateway",
        503: "Service Temporarily Unavailable",
        504: "Gateway Time-out",
        520: "Web server is returning an unknown error",
        521: "Web server is down",
        522: "Connection timed out",
        523: "Origin is unreachable",
        524: "A timeout occurred",
    }
)

SCRIPT_USER_AGENT_WORDS = ("python", "aiohttp", "requests", "curl")
"""Words in a ``User-Agent`` that the file host's bot check treats as a script."""

_PRODUCT = re.compile(r"zimage-async/[0-9][0-9A-Za-z.+\-]*")


def proxy_reason(status: int) -> str:
    """Return the reason phrase a proxy shows for *status*.

    >>> proxy_reason(522)
    'Connection timed out'
    """
    return _REASONS.get(status, "Server Error")


def proxy_error_page(status: int) -> str:
    """Return the HTML page a proxy answers with for the 5xx *status*."""
    reason = html.escape(proxy_reason(status))
    if 520 <= status <= 530:
        return (
            '<!DOCTYPE html>\n<html lang="en-US"><head><title>'
            f"ai.odkkk.com | {status}: {reason}</title></head>\n<body>"
            f'<div id="cf-error-details"><h1>{reason}</h1>'
            f'<span class="code-label">Error code {status}</span>'
            "<p>Visit cloudflare.com for more information.</p>"
            '<span class="cf-footer-item">Cloudflare Ray ID: <strong>8f1e2d3c4b5a6978'
            "</strong></span></div></body></html>\n"
        )
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def script_blocked_page() -> str:
    """Return the Cloudflare 403 page for error 1010 (a banned browser signature)."""
    return (
        '<!DOCTYPE html>\n<html lang="en-US"><head>'
        "<title>Access denied | files.odkkk.com used Cloudflare to restrict access</title>"
        '</head>\n<body><div id="cf-error-details"><h1>Error 1010</h1>'
        "<h2>Access denied</h2><p>The owner of this website (files.odkkk.com) has banned "
        "your access based on your browser's signature.</p>"
        '<span class="cf-footer-item">Cloudflare Ray ID: <strong>8f1e2d3c4b5a6979'
        "</strong></span></div></body></html>\n"
    )


def user_agent_is_blocked(user_agent: str | None) -> bool:
    """Tell whether the file host's bot check refuses *user_agent*.

    A missing or empty value is refused, and so is one mentioning a script word, unless it
    starts with the product token ``zimage-async/<version>``.

    >>> [user_agent_is_blocked(v) for v in (None, "Python/3.12 aiohttp/3.9", "zimage-async/1.0")]
    [True, True, False]
    """
    if not user_agent or not user_agent.strip():
        return True
    if _PRODUCT.match(user_agent.strip()):
        return False
    lowered = user_agent.lower()
    return any(word in lowered for word in SCRIPT_USER_AGENT_WORDS)
