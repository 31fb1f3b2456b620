"""generate_many's refusals name what is wrong without quoting a prompt, before anything is made.

A name template that gives two items one file name is refused naming the items, the
template and its fields, never the shared name (its slug is words of the prompts); an
``output_dir`` that is an existing file is refused on ``output_dir`` before the journal
file is created. File-name slugs fold accented letters to their ASCII letters.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zimage_async import InvalidRequestError, Session
from zimage_async._batchoptions import check_output_dir
from zimage_async._naming import check_batch_names, slugify
from zimage_async.emulator import Emulator

SECRET = "Confidential merger Acme buys Globex poster"
#: Its slug and the slug of it plus " 0" meet when a task has several images.
SHORT = "Acme buys Globex"


@pytest.mark.parametrize(
    ("template", "prompts", "fields"),
    [
        pytest.param("{slug}", [SECRET, SECRET + "!"], ["{slug}"], id="slug"),
        pytest.param("{slug}-{seed}", [SECRET, SECRET + "!"], ["{slug}", "{seed}"], id="seed"),
        pytest.param("{slug}", [SHORT, SHORT + " 0"], ["{slug}"], id="several-images"),
    ],
)
def test_a_name_collision_names_the_items_and_fields_not_the_prompt(
    template: str, prompts: list[str], fields: list[str]
) -> None:
    """The refusal says items 0 and 1, the template and its fields; no word of the prompt."""
    with pytest.raises(InvalidRequestError) as caught:
        check_batch_names(template, [(prompt, None, n + 1) for n, prompt in enumerate(prompts)])
    message = str(caught.value)
    assert caught.value.field == "name"
    assert "items 0 and 1" in message
    assert repr(template) in message
    for field in fields:
        assert field in message
    for word in ("confidential", "merger", "acme", "globex", "poster"):
        assert word not in message.lower()


async def test_generate_many_refuses_a_shared_name_without_quoting_the_prompt(
    emulator: Emulator, zs: Session, tmp_path: Path
) -> None:
    """The same through generate_many: refused before anything is sent, no prompt words."""
    with pytest.raises(InvalidRequestError) as caught:
        zs.generate_many([SECRET, SECRET + "!"], output_dir=tmp_path / "o", name="{slug}")
    assert "acme-buys-globex" not in str(caught.value)
    assert "items 0 and 1" in str(caught.value)
    assert emulator.ledger == ()


@pytest.mark.parametrize("below", ["", "sub"])
async def test_an_output_dir_that_is_a_file_is_refused_before_the_journal_is_made(
    emulator: Emulator, zs: Session, tmp_path: Path, below: str
) -> None:
    """An existing regular file as output_dir, or above it: refused on it, nothing made."""
    where = tmp_path / "renders"
    where.write_text("not a folder")
    journal = tmp_path / "j.sqlite"
    with pytest.raises(InvalidRequestError) as caught:  # at the call: nothing was started
        zs.generate_many(["a cat"], output_dir=where / below, journal=journal)
    assert caught.value.field == "output_dir"
    said = "'renders' in its path is a file" if below else "it is a file, not a folder"
    assert said in str(caught.value)
    assert not journal.exists()
    assert where.read_text() == "not a folder"
    assert emulator.ledger == ()


@pytest.mark.parametrize(
    ("prompt", "slug"),
    [
        pytest.param("café au lait", "cafe-au-lait", id="cafe"),
        pytest.param("Crème brûlée", "creme-brulee", id="creme"),
        pytest.param("İstanbul", "istanbul", id="dotted-i"),
        pytest.param("Straße bei Nacht", "strasse-bei-nacht", id="sharp-s"),
        pytest.param("jalapeño pepper", "jalapeno-pepper", id="tilde"),
        pytest.param("ﬁne ½ cup", "fine-1-2-cup", id="compatibility"),
        pytest.param("Smørrebrød på Østerbro", "smorrebrod-pa-osterbro", id="stroke-o"),
        pytest.param("Łódź nocą", "lodz-noca", id="stroke-l"),
        pytest.param("Æble og æg", "aeble-og-aeg", id="ligature-ae"),
        pytest.param("Đà Nẵng", "da-nang", id="stroke-d"),
        pytest.param("Œuvre", "oeuvre", id="ligature-oe"),
        pytest.param("Þingvellir, Ðorg", "thingvellir-dorg", id="thorn-eth"),
        pytest.param("Iğdır ħal", "igdir-hal", id="dotless-i-stroke-h"),  # noqa: RUF001
        pytest.param("狐狸 in snow", "in-snow", id="cjk-dropped"),
        pytest.param("狐狸", "untitled", id="cjk-only"),
    ],
)
def test_slugs_fold_accented_letters_to_ascii(prompt: str, slug: str) -> None:
    """Accents are dropped, not the letters they sit on; letters with no ASCII fold go."""
    assert slugify(prompt) == slug


def test_an_output_dir_made_by_another_worker_meanwhile_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker on the same batch makes the folder between the two looks: no refusal.

    Two workers started at once on one batch both look at ``out/``; the first look finds
    nothing, the other worker makes it, the second look finds it. It is a folder, not a file.
    """
    where = tmp_path / "out"
    real_lexists = os.path.lexists

    def made_meanwhile(path: str | os.PathLike[str]) -> bool:
        where.mkdir(exist_ok=True)  # the other worker's mkdir lands now
        return real_lexists(path)

    monkeypatch.setattr(os.path, "lexists", made_meanwhile)
    assert check_output_dir(f"{where}/") == where
