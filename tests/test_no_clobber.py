"""A batch never replaces an image it did not save: ``save(overwrite=False)``.

Two batches saving into one folder under names that meet (``--name "{number}"``, or one
prompt on the same line of two files) replaced each other's paid images without a word.
``save(..., overwrite=False)`` keeps a file already at a final path: if it holds the
same bytes the save counts it as saved (a rerun after a crash between the rename and
the journal's record), otherwise :class:`FileExistsError` names it and nothing is
replaced. Batches save that way, whatever their journal says.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zimage_async import Session
from zimage_async._saving import place
from zimage_async.emulator import Emulator

from ._cli import cli_env, finished


async def test_a_different_file_is_kept_and_named(zs: Session, tmp_path: Path) -> None:
    """overwrite=False over another file: FileExistsError naming it; it is unchanged."""
    target = tmp_path / "cat.png"
    target.write_bytes(b"someone else's image")
    handle = await zs.submit("a cat")
    with pytest.raises(FileExistsError) as caught:
        await handle.save(target, overwrite=False)
    assert caught.value.filename == str(target)
    assert target.read_bytes() == b"someone else's image"
    assert not list(tmp_path.glob(".zimage-*.part"))


async def test_the_same_bytes_count_as_saved(zs: Session, tmp_path: Path) -> None:
    """A file already holding the image is the image: no error, the path is returned."""
    handle = await zs.submit("a cat")
    first = await handle.save(tmp_path / "cat.png")
    again = await handle.save(tmp_path / "cat.png", overwrite=False)
    assert again == first
    assert not list(tmp_path.glob(".zimage-*.part"))


async def test_a_link_is_never_taken_for_the_image(zs: Session, tmp_path: Path) -> None:
    """A symbolic link at the path is kept, even to a file with the same bytes."""
    handle = await zs.submit("a cat")
    (original,) = await handle.save(tmp_path / "original.png")
    link = tmp_path / "cat.png"
    link.symlink_to(original)
    with pytest.raises(FileExistsError):
        await handle.save(link, overwrite=False)
    assert link.is_symlink()


async def test_a_second_batch_leaves_the_first_ones_images(zs: Session, tmp_path: Path) -> None:
    """Two batches, one folder, names that meet: the second stops, the first's stay."""
    out = tmp_path / "out"
    async with zs.generate_many(
        ["a cat", "a cow"], output_dir=out, name="{number}", journal=tmp_path / "j.sqlite"
    ) as batch:
        assert all([item.ok async for item in batch])
    before = {path.name: path.read_bytes() for path in out.glob("*.png")}
    assert sorted(before) == ["1.png", "2.png"]

    async def dogs() -> None:
        async with zs.generate_many(
            ["a dog", "a fox"],
            output_dir=out,
            name="{number}",
            journal=tmp_path / "j.sqlite",
            batch_id="dogs",
        ) as batch:
            async for _ in batch:
                pass

    with pytest.raises(FileExistsError):
        await dogs()
    assert {path.name: path.read_bytes() for path in out.glob("*.png")} == before


async def test_a_batch_item_replaces_the_file_it_saved_itself(zs: Session, tmp_path: Path) -> None:
    """Its own journaled file, lost in part (here: damaged), is saved again over it."""
    out, journal = tmp_path / "out", tmp_path / "j.sqlite"
    async with zs.generate_many(["a cat"], output_dir=out, journal=journal) as batch:
        (item,) = [item async for item in batch]
    (path,) = item.paths
    whole = path.read_bytes()
    path.unlink()  # a lost file is fetched again: the journal says this item saved it
    async with zs.generate_many(["a cat"], output_dir=out, journal=journal) as batch:
        (again,) = [item async for item in batch]
    assert again.ok, again.error
    assert path.read_bytes() == whole


async def test_the_command_line_says_which_file_stopped_the_batch(tmp_path: Path) -> None:
    """`zimage batch` over another batch's images: exit 2 naming the file, nothing replaced."""
    (tmp_path / "cats.txt").write_text("a cat\n")
    (tmp_path / "dogs.txt").write_text("a dog\n")
    async with Emulator(task_duration=0.05) as emu:
        env = cli_env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url)
        options = ("-o", "out", "--name", "{number}")
        status, _, stderr = await finished("batch", "cats.txt", *options, env=env, cwd=tmp_path)
        assert status == 0, stderr
        cat = (tmp_path / "out" / "1.png").read_bytes()
        status, _, stderr = await finished("batch", "dogs.txt", *options, env=env, cwd=tmp_path)
        billed = len(emu.ledger)
    assert status == 2, stderr
    assert billed == 1  # the cats' task only: refused before any create
    assert "Traceback" not in stderr
    assert "out/1.png" in stderr
    assert (tmp_path / "out" / "1.png").read_bytes() == cat


async def test_a_named_pipe_at_the_name_is_kept_without_being_opened(
    zs: Session, tmp_path: Path
) -> None:
    """A named pipe (whose open would wait for a writer, the event loop with it): kept."""
    handle = await zs.submit("a cat")
    target = tmp_path / "cat.png"
    os.mkfifo(target)
    with pytest.raises(FileExistsError):
        await handle.save(target, overwrite=False)
    assert target.exists()


async def test_a_rerun_never_replaces_another_batchs_file(zs: Session, tmp_path: Path) -> None:
    """Its own file gone and its names changed: the rerun meets another batch's, keeps it."""
    out = tmp_path / "out"
    async with zs.generate_many(["a cat"], output_dir=out, journal=tmp_path / "mine.sqlite") as b:
        (mine,) = [item async for item in b]
    async with zs.generate_many(
        ["a dog"], output_dir=out, journal=tmp_path / "other.sqlite", name="{number}"
    ) as b:
        (other,) = [item async for item in b]
    theirs = other.paths[0].read_bytes()
    mine.paths[0].unlink()  # moved away: the rerun saves it again, now as 1.png

    async def rerun() -> None:
        async with zs.generate_many(
            ["a cat"], output_dir=out, journal=tmp_path / "mine.sqlite", name="{number}"
        ) as batch:
            async for _ in batch:
                pass

    with pytest.raises(FileExistsError):
        await rerun()
    assert other.paths[0].read_bytes() == theirs


def test_a_file_removed_between_the_link_and_its_look_frees_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process removes the file our link met: the new one takes the free name."""
    temp, final = tmp_path / ".zimage-x.part", tmp_path / "img.png"
    temp.write_bytes(b"new image")
    final.write_bytes(b"someone else's")
    real_link = os.link

    def racing_link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        try:
            real_link(src, dst)
        finally:
            os.unlink(dst)  # removed right after our link failed

    monkeypatch.setattr(os, "link", racing_link)
    assert place(temp, final, overwrite=False) is False
    assert final.read_bytes() == b"new image"
    assert not temp.exists()


@pytest.mark.parametrize("overwrite", [True, False])
async def test_a_second_save_does_not_take_another_image_for_its_own(
    zs: Session, tmp_path: Path, overwrite: bool
) -> None:
    """a.save(), then b.save() to the same name, then a.save() again: A's image, or refused.

    A save remembered its files and gave them again while they existed, whatever they
    held since: the third save returned a file holding B's image.
    """
    a, b = await zs.submit("a red fox"), await zs.submit("a blue whale")
    (first,) = await a.save(tmp_path, name="cover", overwrite=overwrite)
    mine = first.read_bytes()
    await b.save(tmp_path, name="cover")  # replaces it (the default)
    assert first.read_bytes() != mine
    if overwrite:
        assert await a.save(tmp_path, name="cover", overwrite=True) == [first]
        assert first.read_bytes() == mine
    else:
        with pytest.raises(FileExistsError):
            await a.save(tmp_path, name="cover", overwrite=False)


async def test_saving_to_one_name_again_replaces_the_renamed_file_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """save("cover.png") of a JPEG writes cover.jpg; the same call again replaces it.

    The replacing save follows overwrite=True, as for the name given, and says in its
    warning that it replaces a file. (Refusing it made the second of two identical
    commands fail after its task was billed, its image not saved.)
    """
    async with (
        Emulator(task_duration=0.05, image_format="jpeg") as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url) as zs,
    ):
        first, second = await zs.submit("a cat"), await zs.submit("a dog")
        (saved,) = await first.save(tmp_path / "cover.png")
        assert saved == tmp_path / "cover.jpg"
        assert await second.save(tmp_path / "cover.png") == [saved]
        assert saved.read_bytes() == await emu.image_bytes(second.id)
    assert any("replacing the file there" in r.getMessage() for r in caplog.records)
