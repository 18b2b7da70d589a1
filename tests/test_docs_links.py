"""The docs live in the repository (issue 12, item 9): the README linked the API contract in a
folder beside the checkout (`SHARED` below), a file that users of the repository do not have. No tracked file names a path outside the repository,
and every relative Markdown link points at a file that is there."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = "../" + "shared"  # spelled apart so that this file does not name it
_LINK = re.compile(r"\]\(([\w./#-]+)\)")  # a path-like target


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [ROOT / name for name in out.stdout.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return None


def test_no_tracked_file_names_the_shared_folder_outside_the_repo() -> None:
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in _tracked() if (text := _text(p))
                 for n, line in enumerate(text.splitlines(), 1) if SHARED in line]
    assert offenders == []


def test_every_relative_markdown_link_resolves_inside_the_repo() -> None:
    bad = []
    for path in _tracked():
        if path.suffix != ".md" or (text := _text(path)) is None:
            continue
        for target in _LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # http(s):, mailto:, in-page anchors
            file = (path.parent / target.split("#", 1)[0]).resolve()
            if not file.is_relative_to(ROOT) or not file.exists():
                bad.append(f"{path.relative_to(ROOT)}: {target}")
    assert bad == []
