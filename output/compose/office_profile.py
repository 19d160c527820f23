"""How each LibreOffice worker is set up for conversions: its user profile and its memory allocator.

Decisions (measured on a 250-letter batch document, tests/bench/README.md):
- A document loaded for conversion still gets a hidden frame with a status bar, and the status bar's word
  count starts LibreOffice's idle word counting over the whole document (~20% of a conversion's CPU); the
  Writer status bar is emptied in the profile (`user/config/soffice.cfg`), which stops it.
- Word completion (collecting every long word while laying out, ~9%) and automatic spell checking are
  turned off in `registrymodifications.xcu`. Nothing of this changes how a page is laid out.
- LibreOffice spends ~15% of its time in glibc's malloc/free; tcmalloc (or jemalloc) preloaded cuts a
  conversion's CPU by a further ~15-20%. `uno_allocator` chooses: "auto" (tcmalloc, else jemalloc, else
  the system's), "system", or the path of a shared library.
"""

from __future__ import annotations

import ctypes.util
from pathlib import Path

_SETTINGS = [
    ("/org.openoffice.Office.Writer/AutoFunction/Completion", "Enable", "false"),
    ("/org.openoffice.Office.Writer/AutoFunction/Completion", "CollectWords", "false"),
    ("/org.openoffice.Office.Linguistic/SpellChecking", "IsSpellAuto", "false"),
]
_REGISTRY = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
{items}
</oor:items>
"""
_ITEM = '<item oor:path="{path}"><prop oor:name="{name}" oor:op="fuse"><value>{value}</value></prop></item>'
_EMPTY_STATUSBAR = """<?xml version="1.0" encoding="UTF-8"?>
<statusbar:statusbar xmlns:statusbar="http://openoffice.org/2001/statusbar" xmlns:xlink="http://www.w3.org/1999/xlink">
</statusbar:statusbar>
"""
_ALLOCATORS = ("tcmalloc_minimal", "jemalloc")


def prepare_profile(profile: Path) -> None:
    """Write the conversion settings into a LibreOffice user profile (kept if LibreOffice already wrote one)."""
    user = profile / "user"
    registry = user / "registrymodifications.xcu"
    if not registry.exists():  # LibreOffice rewrites this file on exit and keeps our values in it
        user.mkdir(parents=True, exist_ok=True)
        items = "\n".join(_ITEM.format(path=p, name=n, value=v) for p, n, v in _SETTINGS)
        registry.write_text(_REGISTRY.format(items=items), encoding="utf-8")
    statusbar = user / "config" / "soffice.cfg" / "modules" / "swriter" / "statusbar" / "statusbar.xml"
    statusbar.parent.mkdir(parents=True, exist_ok=True)
    statusbar.write_text(_EMPTY_STATUSBAR, encoding="utf-8")


def find_allocator(choice: str) -> str | None:
    """The library to preload into LibreOffice for `choice` ("auto", "system" or a path); None for glibc's."""
    if choice == "system":
        return None
    if choice == "auto":
        for name in _ALLOCATORS:
            found = ctypes.util.find_library(name)
            if found:
                return found  # a soname: the dynamic loader finds it on its usual path
        return None
    if not Path(choice).is_file():
        raise ValueError(f"the allocator library {choice!r} does not exist (uno_allocator: auto, system or a path)")
    return choice


def preload_env(env: dict[str, str], library: str | None) -> dict[str, str]:
    """`env` with `library` first in LD_PRELOAD (unchanged when library is None)."""
    if library is None:
        return env
    others = env.get("LD_PRELOAD", "")
    return {**env, "LD_PRELOAD": f"{library} {others}".strip()}
