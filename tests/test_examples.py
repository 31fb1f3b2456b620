"""The README's example and the pytest plugin's session fixture, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image as PILImage

from zimage_async import Session, TaskStatus

ROOT = Path(__file__).resolve().parents[1]


def test_generate_example_runs_offline(tmp_path: Path) -> None:
    """examples/generate.py, with no key set, saves every image from the emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    out = tmp_path / "out"
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [sys.executable, str(ROOT / "examples" / "generate.py"), str(out), "a red fox", "a boat"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "using the emulator" in result.stderr
    files = sorted(out.iterdir())
    assert len(files) == 2
    for path in files:
        with PILImage.open(path) as image:
            assert image.size == (1152, 864)  # the emulator's 4:3
    assert "2 of 2 saved" in result.stdout


async def test_zimage_session_fixture_generates(zimage_session: Session) -> None:
    """The plugin's zimage_session fixture is an open Session on a fast emulator."""
    result = await zimage_session.generate("from the plugin")
    assert result.task.status is TaskStatus.COMPLETED
    assert result.image.content_type == "image/png"
