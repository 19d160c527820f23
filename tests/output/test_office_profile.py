"""The LibreOffice worker's set-up: profile settings and allocator choice (no LibreOffice needed here; the
pool's tests check a running worker)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from output.compose.office_profile import find_allocator, preload_env, prepare_profile

OOR = "{http://openoffice.org/2001/registry}"


def _settings(registry: Path) -> dict[tuple[str, str], str]:
    root = ET.parse(registry).getroot()
    return {(item.get(f"{OOR}path"), prop.get(f"{OOR}name")): prop.findtext("value")
            for item in root.iter("item") for prop in item.iter("prop")}


def test_a_new_profile_turns_off_word_completion_and_spell_checking_and_empties_the_status_bar(tmp_path) -> None:  # noqa: ANN001
    prepare_profile(tmp_path / "profile")
    settings = _settings(tmp_path / "profile" / "user" / "registrymodifications.xcu")
    completion = "/org.openoffice.Office.Writer/AutoFunction/Completion"
    assert settings[(completion, "Enable")] == settings[(completion, "CollectWords")] == "false"
    assert settings[("/org.openoffice.Office.Linguistic/SpellChecking", "IsSpellAuto")] == "false"
    statusbar = tmp_path / "profile/user/config/soffice.cfg/modules/swriter/statusbar/statusbar.xml"
    assert list(ET.parse(statusbar).getroot()) == []  # no items: no word count in the hidden frame


def test_a_profile_libreoffice_already_wrote_is_kept(tmp_path) -> None:  # noqa: ANN001
    registry = tmp_path / "profile" / "user" / "registrymodifications.xcu"
    registry.parent.mkdir(parents=True)
    registry.write_text("<oor:items xmlns:oor='http://openoffice.org/2001/registry'/>")
    prepare_profile(tmp_path / "profile")
    assert registry.read_text() == "<oor:items xmlns:oor='http://openoffice.org/2001/registry'/>"


def test_allocator_choices(tmp_path) -> None:  # noqa: ANN001
    assert find_allocator("system") is None
    library = tmp_path / "libfake.so"
    library.write_bytes(b"\x7fELF")
    assert find_allocator(str(library)) == str(library)
    with pytest.raises(ValueError, match="does not exist"):
        find_allocator(str(tmp_path / "missing.so"))


def test_the_allocator_goes_first_in_ld_preload() -> None:
    assert preload_env({"A": "1"}, None) == {"A": "1"}
    assert preload_env({"A": "1"}, "libtcmalloc_minimal.so.4")["LD_PRELOAD"] == "libtcmalloc_minimal.so.4"
    assert preload_env({"LD_PRELOAD": "libother.so"}, "libx.so")["LD_PRELOAD"] == "libx.so libother.so"
