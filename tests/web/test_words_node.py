"""The managers' page's pure JavaScript helpers under Node's own test runner (issue 17 item 3:
editor.js split, with unit tests for its pure helpers; issue 18 item 8: a manager's words).

`node --test tests/web/js/` runs the *.test.mjs files there against server/admin/vocab.js,
ruletree.js and router.js (no DOM, no npm). The vocabulary they load is a fixture, so here it is
checked to be exactly what /admin/vocab.json serves for the fields it holds; and every field of
the engine must have a label in vocab.js's FIELD_LABELS.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rules.fields import FIXED_FIELDS
from server.api.admin import vocabulary

ROOT = Path(__file__).resolve().parents[2]
JS_TESTS = ROOT / "tests" / "web" / "js"
ADMIN = ROOT / "server" / "admin"


def _node_args() -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the JS unit tests need Node 20's built-in runner)")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = (int(x) for x in re.match(r"v(\d+)\.(\d+)", out.strip()).groups())  # type: ignore[union-attr]
    if (major, minor) < (20, 10):
        pytest.skip(f"node {out.strip()} is older than 20.10 (needs ES module detection)")
    # server/admin's .js files are ES modules without a package.json to say so: Node >= 20.19
    # detects that by itself, 20.10-20.18 when asked.
    return [node, *(["--experimental-detect-module"] if (major, minor) < (20, 19) else [])]


def test_the_js_unit_tests_pass() -> None:
    args = _node_args()
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert len(files) >= 3, files
    r = subprocess.run([*args, "--test", *files], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    passed = int(re.search(r"^# pass (\d+)$", r.stdout, re.M).group(1))  # type: ignore[union-attr]
    assert passed >= 13, r.stdout[-2000:]


def test_the_fixture_is_what_the_service_serves() -> None:
    fixture = json.loads((JS_TESTS / "vocab_fixture.json").read_text())
    served = vocabulary()
    by_name = {f["name"]: f for f in served["fields"]}
    assert fixture["fields"] and all(f == by_name[f["name"]] for f in fixture["fields"])
    prefixed = {p["prefix"]: p for p in served["prefixed"]}
    assert all(p == prefixed[p["prefix"]] for p in fixture["prefixed"])
    for key in ("triggers", "calendar_ops", "settable", "methods"):
        assert fixture[key] == served[key], key
    assert all(served["actions"][k] == v for k, v in fixture["actions"].items())


def test_every_engine_field_has_a_label() -> None:
    source = (ADMIN / "vocab.js").read_text()
    body = re.search(r"export const FIELD_LABELS = \{(.*?)\};", source, re.S)
    assert body
    labelled = set(re.findall(r"(?:^|[\s,{])'?([\w.]+)'?:\s*'", body.group(1)))
    assert set(FIXED_FIELDS) - labelled == set()
