"""The README's module map names every module of rules/, sandbox/ and server/, and nothing that
is not there: a new module, a split or a rename must update the map in the same change."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _map_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Module map")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def _listed() -> set[str]:
    return set(re.findall(r"^\| `((?:rules|sandbox|server)/[^`]+\.py)` \|", _map_section(), re.M))


def _tree() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for pkg in ("rules", "sandbox", "server")
            for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts}


def test_every_module_is_in_the_map() -> None:
    missing = sorted(_tree() - _listed())
    assert not missing, f"README's module map lacks: {missing}"


def test_the_map_names_no_module_that_is_gone() -> None:
    gone = sorted(_listed() - _tree())
    assert not gone, f"README's module map names modules that do not exist: {gone}"


def test_each_row_says_what_the_module_holds() -> None:
    rows = re.findall(r"^\| `[^`]+\.py` \|(.*)\|\s*$", _map_section(), re.M)
    assert rows and all(len(r.strip()) >= 10 for r in rows)
