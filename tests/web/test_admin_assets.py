"""What /admin serves, checked over HTTP: content types, the strict CSP, no inline code, the
vocabulary the editor offers equals the engine's."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from rules import TRIGGERS
from rules.actions import ACTION_KEYS
from rules.fields import FIXED_FIELDS
from rules.ops import OPS_FOR_TYPE
from server.api.admin import CSP

ASSETS = Path(__file__).resolve().parents[2] / "server" / "admin"


def test_page_and_assets_have_types_and_csp(deskflow):
    want = {"/admin": "text/html", "/admin/app.js": "text/javascript", "/admin/editor.js": "text/javascript",
            "/admin/app.css": "text/css", "/admin/vocab.json": "application/json"}
    with httpx.Client(base_url=deskflow.url) as c:
        for path, ctype in want.items():
            r = c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith(ctype), path
            assert r.headers["content-security-policy"] == CSP
            assert r.headers["x-content-type-options"] == "nosniff"
        etag = c.get("/admin/app.js").headers["etag"]
        assert c.get("/admin/app.js", headers={"If-None-Match": etag}).status_code == 304
        for bad in ("/admin/nope.js", "/admin/..%2Fapi%2Fadmin.py", "/admin/../server/app.py",
                    "/admin/admin.py"):
            assert c.get(bad).status_code == 404, bad


def test_csp_allows_self_only():
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CSP


def test_no_inline_code_and_no_external_urls():
    for path in ASSETS.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://", text.replace("https://…", "")), path.name
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline <script>"
            assert " style=" not in text and "<style" not in text
            assert not re.search(r"\son[a-z]+=", text), "inline event handler"
        if path.suffix == ".js":
            assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|\beval\(|new Function", text), path.name


def test_vocab_is_the_engines(deskflow):
    vocab = httpx.get(f"{deskflow.url}/admin/vocab.json").json()
    assert set(vocab["triggers"]) == set(TRIGGERS)
    assert {f["name"]: f["type"] for f in vocab["fields"]} == {n: f.type for n, f in FIXED_FIELDS.items()}
    assert {t: set(o) for t, o in vocab["ops_for_type"].items()} == {t: set(o) for t, o in OPS_FOR_TYPE.items()}
    assert set(vocab["actions"]) == set(ACTION_KEYS)
    changeable = {f["name"]: f["changeable"] for f in vocab["fields"]}
    assert changeable["message.body"] is False and changeable["subject"] is True
