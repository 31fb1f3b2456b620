"""examples/webhook_server.py keeps no access log, which would record callback URL tokens.

A token in the callback URL's query is a secret of the receiver's; aiohttp's default
access log writes each request line, query included, at INFO. The example runs offline
here (against the emulator, on 127.0.0.1) with logging configured at INFO, as an
application would.
"""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import ROOT

#: Runs the example as ``python examples/webhook_server.py`` would, logging at INFO.
RUN_LOGGED = (
    "import logging, runpy, sys\n"
    "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
    "runpy.run_path(sys.argv[1], run_name='__main__')\n"
)


def test_the_webhook_example_logs_no_request_lines() -> None:
    """No access-log line (``POST /hooks/zimage...``) reaches the configured logging."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    example = ROOT / "examples" / "webhook_server.py"
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-W", "error", "-c", RUN_LOGGED, str(example)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "3 images" in result.stdout
    assert "aiohttp.access" not in result.stderr
    assert "POST /hooks/zimage" not in result.stderr
