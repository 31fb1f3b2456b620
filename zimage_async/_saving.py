"""Writing images to disk: where each file goes, and writing it so no partial file is left."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import attrs

from ._imageinfo import EXTENSIONS

__all__ = ["SavePlan", "plan_save", "prepare_folder", "write_atomically"]

_FILE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})


@attrs.frozen
class SavePlan:
    """Where the images of one ``save(dest)`` call go.

    *dest* is a file path if it ends in an image extension and is not an existing
    directory; anything else is a directory.
    """

    folder: Path
    #: The file name given, or None when *dest* is a directory.
    target: Path | None

    def path(self, *, task_id: str, index: int, count: int, content_type: str) -> Path:
        """Return the final path of image *index* (of *count*) in the format received."""
        if self.target is None:
            return self.folder / f"{task_id}-{index}.{EXTENSIONS[content_type]}"
        if count == 1:
            return self.target
        return self.target.with_name(f"{self.target.stem}-{index}{self.target.suffix}")


def plan_save(dest: str | os.PathLike[str]) -> SavePlan:
    """Decide where ``save(dest)`` writes (pure: looks at the file system, changes nothing).

    >>> plan_save("out/cat.png")
    SavePlan(folder=PosixPath('out'), target=PosixPath('out/cat.png'))
    >>> plan_save("out/")
    SavePlan(folder=PosixPath('out'), target=None)
    """
    target = Path(dest)
    as_dir = (
        target.is_dir()
        or str(dest).endswith(("/", os.sep))
        or target.suffix.lower() not in _FILE_SUFFIXES
    )
    return SavePlan(folder=target, target=None) if as_dir else SavePlan(target.parent, target)


def prepare_folder(plan: SavePlan) -> None:
    """Create the plan's folder, refusing one that is a file."""
    if plan.folder.exists() and not plan.folder.is_dir():
        raise NotADirectoryError(f"cannot save into {plan.folder}: it is a file, not a folder")
    plan.folder.mkdir(parents=True, exist_ok=True)


async def write_atomically(folder: Path, chunks: AsyncIterator[bytes]) -> Path:
    """Stream *chunks* into a hidden temporary file in *folder*; return its path.

    The caller renames it into place (``os.replace``) once the bytes are verified; on any
    failure, cancellation included, the temporary file is removed here.
    """
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".zimage-", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            async for chunk in chunks:
                file.write(chunk)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp
