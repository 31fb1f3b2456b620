"""Writing images to disk: where each file goes, and writing it so no partial file is left."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs

from ._durable import flush, make_folder
from ._imageinfo import EXTENSIONS
from ._naming import (
    DEFAULT_TEMPLATE,
    IMAGES_CHECKED,
    NameFields,
    check_template,
    names_index,
    render_name,
    stem_problem,
)
from ._partfiles import sweep_once
from ._quoting import describe_char, wrong_type

__all__ = [
    "SavePlan",
    "current_umask",
    "fitting_suffix",
    "inside",
    "path_text",
    "place",
    "plan_save",
    "prepare_folder",
    "publish_mode",
    "write_atomically",
]

#: The image suffixes a file *dest* may end in, and the format each one names.
_FILE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_FILE_SUFFIXES[".webp"] = "image/webp"


def fitting_suffix(target: Path, content_type: str) -> Path:
    """Return *target*, or *target* with the suffix of *content_type* if its own names another.

    >>> fitting_suffix(Path("fox.jpg"), "image/png")
    PosixPath('fox.png')
    >>> fitting_suffix(Path("fox.JPEG"), "image/jpeg")
    PosixPath('fox.JPEG')
    """
    if _FILE_SUFFIXES.get(target.suffix.lower()) == content_type:
        return target
    return target.with_suffix(f".{EXTENSIONS[content_type]}")


@attrs.frozen(kw_only=True)
class SavePlan:
    """Where (and how) the images of one ``save(dest)`` call go.

    *dest* is a file path if it ends in an image extension and is not an existing
    directory; anything else is a directory, whose files are named by the ``name``
    template (default ``{task_id}-{index}``) plus the extension of the format received.
    """

    folder: Path
    #: The file name given, or None when *dest* is a directory.
    target: Path | None
    #: The name template for files in the folder (None: the default).
    name: str | None = None
    #: The caller's item number, for ``{number}``.
    number: int | None = None
    #: Whether to embed the generation metadata in each file.
    metadata: bool = False
    #: Whether each file (and then its folder) is flushed to the disk before the save ends.
    durable: bool = False
    #: Whether a file already at a final path is replaced (else: kept, see :func:`place`).
    overwrite: bool = True

    def path(
        self,
        *,
        task_id: str,
        index: int,
        count: int,
        content_type: str,
        prompt: str | None = None,
        seed: int | None = None,
    ) -> Path:
        """Return the final path of image *index* (of *count*) in the format received.

        A file *dest* whose suffix names another format than the one received gets the
        right suffix instead (``fox.jpg`` receiving PNG bytes becomes ``fox.png``).
        """
        if self.target is None:
            template = self.name or DEFAULT_TEMPLATE
            if count > 1 and not names_index(template):
                template += "-{index}"  # several images must not share one name
            fields = NameFields(task_id=task_id, index=index, prompt=prompt, seed=seed)
            extension = f".{EXTENSIONS[content_type]}"
            stem = render_name(
                template, attrs.evolve(fields, number=self.number), extension=extension
            )
            return inside(self.folder, stem + extension)
        target = fitting_suffix(self.target, content_type)
        if count == 1:
            return target
        return target.with_name(f"{target.stem}-{index}{target.suffix}")


def variant_problem(target: Path) -> str | None:
    """Say why the file name *target* may not fit once ``save()`` varies it, or None.

    A task of several images is saved as ``<stem>-<n><suffix>``, and an image of another
    format than the suffix names gets that format's suffix: the longest such name must
    still be one the file system takes.

    >>> variant_problem(Path("out/fox.png")) is None
    True
    """
    widest = max([target.suffix, *(f".{ext}" for ext in EXTENSIONS.values())], key=len)
    problem = stem_problem(f"{target.stem}-{IMAGES_CHECKED - 1}", widest)
    if problem is None:
        return None
    return (
        "the name does not fit once numbered for several images or given another "
        f"format's extension: it {problem}"
    )


def inside(folder: Path, name: str) -> Path:
    """Return ``folder / name``, refusing a *name* that would not be a file of *folder*.

    The last check before a rendered name becomes a path: a name that is not one path
    component, or whose path, made absolute and normalised, is not directly in
    *folder*, raises :class:`InvalidRequestError` on ``name`` and nothing is written.
    (A symbolic link already at the path is not followed: ``os.replace`` replaces the
    link itself.)
    """
    from ._exceptions import InvalidRequestError

    path = folder / name
    base = os.path.normpath(os.path.abspath(folder))
    alone = name not in {"", ".", ".."} and "\x00" not in name and Path(name).name == name
    if not alone or os.path.dirname(os.path.normpath(os.path.join(base, name))) != base:
        raise InvalidRequestError(
            "name", "a saved image's name is a file directly in its folder", f"got {name!r}"
        )
    return path


def path_text(field: str, value: object, rule: str) -> str:
    """Return the text of the path *value*, refusing one that no file system call takes.

    Refused, as an :class:`InvalidRequestError` on *field* with *rule*: anything but a
    str or an os.PathLike of str, a NUL character, a character the file system's
    encoding cannot encode (a lone surrogate outside ``surrogateescape``'s range).
    """
    from ._exceptions import InvalidRequestError

    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise InvalidRequestError(field, rule, wrong_type(value))
    try:
        os.fsencode(text)
    except UnicodeEncodeError as exc:
        bad = exc.start
    else:
        bad = text.find("\x00")
    if bad >= 0:
        raise InvalidRequestError(
            field, rule, f"it holds {describe_char(text[bad])} at position {bad}"
        )
    return text


def plan_save(
    dest: str | os.PathLike[str],
    *,
    name: str | None = None,
    number: int | None = None,
    metadata: bool = False,
    durable: bool = False,
    overwrite: bool = True,
) -> SavePlan:
    """Decide where ``save(dest)`` writes (pure: looks at the file system, changes nothing).

    A *name* template is checked here, before anything is fetched; it only applies to a
    folder *dest* (with a file *dest*, :class:`InvalidRequestError` says to choose one).

    >>> plan_save("out/cat.png")  # doctest: +NORMALIZE_WHITESPACE
    SavePlan(folder=PosixPath('out'), target=PosixPath('out/cat.png'), name=None,
             number=None, metadata=False, durable=False, overwrite=True)
    >>> plan_save("out/").target is None
    True
    """
    from ._exceptions import InvalidRequestError

    rule = "a file or folder path (str or Path), without NUL, which the file system can encode"
    text = path_text("dest", dest, rule)
    for field, flag in (("metadata", metadata), ("durable", durable), ("overwrite", overwrite)):
        if not isinstance(flag, bool):
            raise InvalidRequestError(field, "True or False", wrong_type(flag))
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
        rule = "an integer (the {number} of a name template), or None"
        raise InvalidRequestError("number", rule, wrong_type(number))
    target = Path(text)
    as_dir = (
        target.is_dir()
        or text.endswith(("/", os.sep))
        or target.suffix.lower() not in _FILE_SUFFIXES
    )
    if name is not None:
        check_template(name, number=number)
        if not as_dir:
            raise InvalidRequestError(
                "name",
                "a name template names files in a folder",
                f"dest {str(dest)!r} is already a file name; pass a folder, or drop name=",
            )
    if as_dir:
        return SavePlan(
            folder=target,
            target=None,
            name=name,
            number=number,
            metadata=metadata,
            durable=durable,
            overwrite=overwrite,
        )
    return SavePlan(
        folder=target.parent,
        target=target,
        metadata=metadata,
        durable=durable,
        overwrite=overwrite,
    )


async def prepare_folder(plan: SavePlan) -> None:
    """Create the plan's folder, refusing one that is a file.

    The first save into a folder (in this process) removes the partial files a killed
    process left there (:func:`~zimage_async._partfiles.sweep_once`).
    """
    if plan.folder.exists() and not plan.folder.is_dir():
        raise NotADirectoryError(f"cannot save into {plan.folder}: it is a file, not a folder")
    await make_folder(plan.folder, durable=plan.durable)
    sweep_once(plan.folder)


def current_umask() -> int:
    """Return the process umask without changing it where the system can tell it.

    Linux states it in ``/proc/self/status``; elsewhere it is read by setting and
    restoring it at once (a short window in which another thread's new file could get
    the wrong mode, which only this fallback risks).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def publish_mode(path: Path) -> None:
    """Give a file made by ``mkstemp`` (mode 600) the mode a plain ``open()`` would give it.

    That is ``0o666 & ~umask``: 644 under the usual umask 022.
    """
    path.chmod(0o666 & ~current_umask())


async def write_atomically(
    folder: Path, chunks: AsyncIterator[bytes], *, durable: bool = False, shown: Path | None = None
) -> Path:
    """Stream *chunks* into a hidden temporary file in *folder*; return its path.

    The file gets the mode the umask gives a new file (not ``mkstemp``'s 600). The caller
    puts it into place (:func:`place`) once the bytes are verified; on any failure,
    cancellation included, the temporary file is removed here. With *durable*, the
    bytes are flushed to the disk (``fsync``, in a worker thread) before this returns.
    A failure to write (a full disk) names *shown*, the file being saved (else *folder*),
    not the temporary file, which is gone by then.
    """
    named = folder if shown is None else shown
    with _naming(named):
        fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".zimage-", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            publish_mode(temp)
            async for chunk in chunks:
                with _naming(named):
                    file.write(chunk)
            with _naming(named):
                file.flush()  # the last bytes, so that a full disk is told here, not at close
            if durable:
                await flush(os.dup(file.fileno()))
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def place(temp: Path, final: Path, *, overwrite: bool) -> bool:
    """Rename *temp* to *final*; return whether a file already there was kept instead.

    Without *overwrite*, a file at *final* is kept (the new one is linked into place,
    which fails if anything is there, even in another process's same moment; without
    hard links, it is checked just before the rename): a regular file with the same
    bytes as *temp* stands for it (*temp* is removed, ``True`` is returned); anything
    else (other bytes, a symbolic link, a folder, a named pipe, never opened) raises
    :class:`FileExistsError` naming *final*, and *temp* is left to the caller.
    """
    if overwrite:
        os.replace(temp, final)
        return False
    try:
        os.link(temp, final)
    except FileExistsError:
        pass
    except OSError:  # no hard links on this file system
        if not os.path.lexists(final):
            os.replace(temp, final)
            return False
    else:
        temp.unlink()
        return False
    try:
        there = os.lstat(final)
    except FileNotFoundError:  # removed since (another process): the name is free
        os.replace(temp, final)
        return False
    # Only a regular file is opened (a named pipe's open would wait for a writer).
    if not stat.S_ISREG(there.st_mode) or not _same_bytes(final, temp, there.st_size):
        raise FileExistsError(
            errno.EEXIST, "another file is there, and this save does not replace it", str(final)
        )
    temp.unlink()
    return True


def _same_bytes(there: Path, ours: Path, size: int, block: int = 1 << 20) -> bool:
    """Whether the regular file *there* (of *size* bytes) holds the bytes of *ours*."""
    if ours.stat().st_size != size:
        return False
    with there.open("rb") as a, ours.open("rb") as b:
        while chunk := a.read(block):
            if chunk != b.read(block):
                return False
    return True


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Give an ``OSError`` raised inside (a full disk's, the temp file's) *path* as its file."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
