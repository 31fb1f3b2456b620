"""Which certificate authorities a Session trusts, and where it reads them from.

``SSL_CERT_FILE`` is read from ``environ`` when ``trust_env`` is on, and from nowhere
when it is off. OpenSSL also reads ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` from the
process environment by itself, for any context made with its default paths; so these
checks run in a child process whose own environment names the test CA, against an
HTTPS server on 127.0.0.1 whose certificate only that CA issued.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from zimage_async import _config

from ._proxies import tls_server
from .conftest import ROOT

CHILD = """
import asyncio, sys
from zimage_async import APIConnectionError
from zimage_async._redaction import RedactedHeaders
from zimage_async._transport import Transport

async def main(port, how):
    options = {
        "default": {},
        "trust_env=False": {"trust_env": False},
        "environ={}": {"environ": {}},
    }[how]
    t = Transport(
        http_session=None, max_connections=2, timeout=5, connect_timeout=5, read_timeout=5,
        **options,
    )
    t.open()
    try:
        reply = await t.request(
            "GET", f"https://127.0.0.1:{port}/hello", headers=RedactedHeaders({}), max_body=100
        )
        print(reply.body.decode())
    except APIConnectionError as exc:
        print("refused:", exc)
    finally:
        await t.close()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


@pytest.fixture
async def server(ca: trustme.CA) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 whose certificate only the test CA issued."""
    async with tls_server(ca, "127.0.0.1") as port:
        yield port


async def _child(port: int, how: str, ca_file: str, tmp_path: Path) -> str:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in {"SSL_CERT_FILE", "SSL_CERT_DIR"}}
    env |= {"SSL_CERT_FILE": ca_file, "PYTHONPATH": str(ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(port),
        how,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    return out.decode().strip()


async def test_the_process_environment_names_the_ca_by_default(
    server: int, ca_file: str, tmp_path: Path
) -> None:
    """With the defaults, the process's SSL_CERT_FILE is where the CAs come from."""
    assert await _child(server, "default", ca_file, tmp_path) == "hello"


@pytest.mark.parametrize("how", ["trust_env=False", "environ={}"])
async def test_a_session_told_to_ignore_the_environment_ignores_its_ca_file(
    server: int, ca_file: str, tmp_path: Path, how: str
) -> None:
    """trust_env=False, or an environ without SSL_CERT_FILE: the process's is not trusted."""
    shown = await _child(server, how, ca_file, tmp_path)
    assert shown.startswith("refused:")
    assert "certificate" in shown


def test_without_openssl_paths_the_system_store_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows (no OpenSSL CA paths, a certificate store of its own): the default context.

    A context with no CA would refuse every server; ``ssl.create_default_context()``
    loads the system's store there (OpenSSL's variables do not name it).
    """
    missing = ssl.DefaultVerifyPaths(
        "", "", "SSL_CERT_FILE", "/nonexistent/cert.pem", "SSL_CERT_DIR", "/nonexistent/certs"
    )
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: missing)
    loaded: list[bool] = []
    real = ssl.SSLContext.load_default_certs

    def spy(self: ssl.SSLContext, purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH) -> None:
        loaded.append(True)
        real(self, purpose)

    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", spy)
    context = _config.system_trust.__wrapped__()
    assert loaded == [True]
    assert context.verify_mode is ssl.CERT_REQUIRED
