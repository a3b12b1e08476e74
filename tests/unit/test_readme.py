"""The README stays true: its configuration table lists every setting there is, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from service.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented() -> set[str]:
    """Variables in the configuration table; `JOBSTREAM_A_B` / `_C` also names JOBSTREAM_A_C."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    wanted = {f"JOBSTREAM_{name.upper()}" for name in Settings.model_fields}
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `JOBSTREAM_"):
            continue
        cell = line.split("|")[1]
        first, *suffixes = re.findall(r"`([A-Z_]+)`", cell)
        names.add(first)
        for suffix in suffixes:  # the longest stem of `first` that makes a real setting
            for cut in range(len(first), 0, -1):
                if first[:cut] + suffix in wanted:
                    names.add(first[:cut] + suffix)
                    break
            else:
                names.add(suffix)
    return names


def test_every_setting_is_documented_and_nothing_else() -> None:
    wanted = {f"JOBSTREAM_{name.upper()}" for name in Settings.model_fields}
    seen = documented()
    assert sorted(wanted - seen) == [], "settings missing from the README table"
    assert sorted(seen - wanted) == [], "README rows for settings that do not exist"
