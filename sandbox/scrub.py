"""Secret values out of everything a response hands back: every spelling, not only the exact text.

A server the secret is sent to can echo it back in a form that *decodes* to the secret: JSON
escapes (`\\/`, `\\u0063`, `\\U0063`-style mixed-case hex, surrogate pairs, `\\"`), URL encoding
(`%2F`, `%2f`, `+`), HTML character references (`&#47;`, `&#x2F;`), hex, or base64 (standard or
URL-safe, at any alignment inside a longer base64 run). `resp.json()` in the worker and the
`http_request` action's `map` decode JSON escapes, so replacing only the exact text let an echo
server hand the token to a script and into run records (issue 13 B10).

How: one regex per secret where every character may be written in any of those escape forms
(so mixed spellings in one token match too), then base64 and hex runs; then, if the scrubbed text
is JSON, it is parsed and every decoded key and string is scrubbed again — when that changes
anything, the text handed back is the re-serialised, scrubbed document. The decoded check is the
guarantee for the forms the worker decodes; the text forms are defence in depth. A secret split
across JSON keys or transformed otherwise (reversed, encrypted) is out of reach of any scrubber:
secrets are also bound to the hosts that may receive them (BrokerConfig.secret_hosts).
"""
from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from typing import Any

import orjson

REDACTED = "[secret]"
MIN_SCRUB_CHARS = 4     # shorter values would blank ordinary text; the API refuses none shorter
_SHORT_ESCAPES = {"/": "/", '"': '"', "\\": "\\", "\t": "t", "\b": "b", "\f": "f"}


_CHUNK = 16 * 1024      # the slow regex searches this much text per call (see _sub_chunked)


def _hex(n: int, width: int) -> str:
    return f"0{{0,8}}{n:0{width}x}"  # IGNORECASE covers upper, lower and mixed-case digits


def _char(ch: str) -> str:
    cp = ord(ch)
    alts = [re.escape(ch), f"&#0{{0,8}}{cp};", f"&#x{_hex(cp, 1)};"]
    if cp < 0x10000:
        alts.append(r"\\u" + f"{cp:04x}")
    else:                            # JSON writes astral characters as a surrogate pair
        v = cp - 0x10000
        alts.append(r"\\u" + f"{0xD800 + (v >> 10):04x}" + r"\\u" + f"{0xDC00 + (v & 0x3FF):04x}")
    if ch in _SHORT_ESCAPES:
        alts.append(re.escape("\\" + _SHORT_ESCAPES[ch]))
    alts.append("".join(f"%{b:02x}" for b in ch.encode("utf-8", "surrogatepass")))
    if ch == " ":
        alts.append(r"\+")
    return "(?:" + "|".join(alts) + ")"


def _base64_cores(raw: bytes) -> list[str]:
    """The base64 characters that depend on the secret's bytes alone, at each of the three byte
    alignments a longer encoded run can put it in, in both alphabets."""
    out = []
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + raw).decode()
        start, end = -(-8 * k // 6), (8 * (k + len(raw))) // 6
        core = encoded[start:end]
        if len(core) >= MIN_SCRUB_CHARS:
            out += [core, core.replace("+", "-").replace("/", "_")]
    return out


def _sub_chunked(pattern: re.Pattern[str], text: str, span: int) -> str:
    """pattern.sub(REDACTED, text), one bounded search at a time: a single `sub` over a 1 MiB
    body holds the GIL for its whole run (~0.3 s), freezing the event loop even from a thread.
    A match is at most `span` characters, so a window of _CHUNK + span finds every match that
    starts in its first _CHUNK characters."""
    out: list[str] = []
    pos = last = 0
    n = len(text)
    while pos < n:
        end = min(n, pos + _CHUNK)
        m = pattern.search(text, pos, min(n, end + span))
        if m is None or m.start() >= end:
            pos = end
            continue
        out += [text[last:m.start()], REDACTED]
        last = pos = max(m.end(), m.start() + 1)
    out.append(text[last:])
    return "".join(out)


def _span(secret: str) -> int:
    """The longest text one match of _pattern(secret) can be: 18 characters per character
    (`&#x` + 8 zeros + 6 digits + `;`), more than any base64 or hex form."""
    return 18 * len(secret) + 16


@functools.lru_cache(maxsize=512)
def _pattern(secret: str) -> re.Pattern[str]:
    raw = secret.encode("utf-8", "surrogatepass")
    forms = ["".join(_char(ch) for ch in secret), re.escape(raw.hex())]
    forms += [re.escape(core) for core in _base64_cores(raw)]
    return re.compile("|".join(forms), re.IGNORECASE)


# Views that undo the escapes: a secret is looked for in them with fast substring searches, and
# only a text that contains one (an echo of a secret: rare) pays for the per-character regex.
# A run of escapes is one match (one callback), so a body made of escapes costs little more.
_PAIR = r"(?:\\[uU][0-9a-fA-F]{4})+"      # a run of \u escapes, decoded at once as UTF-16
_JSON_ESCAPE = re.compile(_PAIR + r"|\\[/\"\\tbfnr]")
_ANY_ESCAPE = re.compile(_PAIR + r"|\\[/\"\\tbfnr]"
                         r"|%[0-9a-fA-F]{2}(?:%[0-9a-fA-F]{2})*|&#[0-9]{1,7};|&#[xX][0-9a-fA-F]{1,6};|\+")
_SHORT = {"/": "/", '"': '"', "\\": "\\", "t": "\t", "b": "\b", "f": "\f", "n": "\n", "r": "\r"}


def _unescape(m: re.Match[str]) -> str:
    tok = m.group(0)
    if tok[0] == "\\":
        if tok[1] not in "uU":
            return _SHORT[tok[1]]
        # surrogate pairs join, lone surrogates become U+FFFD, as a JSON decoder would see them
        return bytes.fromhex(tok[2:].replace("\\u", "").replace("\\U", "")).decode("utf-16-be", "replace")
    if tok[0] == "%":
        return bytes.fromhex(tok.replace("%", "")).decode("utf-8", "replace")
    if tok[0] == "&":
        n = int(tok[3:-1], 16) if tok[2] in "xX" else int(tok[2:-1])
        return chr(n) if n < 0x110000 and not 0xD800 <= n < 0xE000 else "?"
    return " "                           # "+": a space in form encoding


class Scrubber:
    """The scrubbing for one set of secret values (one run's BrokerConfig)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if s and len(s) >= MIN_SCRUB_CHARS}, key=len, reverse=True)
        self.values = tuple(values)
        self._lower = tuple(v.lower() for v in values)
        # a value with %, & or + in it could be spoilt by the full view: look in a JSON-only one too
        self._json_view = any(c in v for v in values for c in "%&+")
        self._encoded = tuple(tuple([v.encode("utf-8", "surrogatepass").hex()]
                                    + _base64_cores(v.encode("utf-8", "surrogatepass"))) for v in values)

    def _suspects(self, text: str) -> list[str]:
        """The secrets some view of `text` contains (cheap: substring searches)."""
        if not self.values:
            return []
        low = text.lower()
        views = [low]
        if self._json_view and "\\" in text:
            views.append(_JSON_ESCAPE.sub(_unescape, text).lower())
        if any(c in text for c in "\\%&+"):
            views.append(_ANY_ESCAPE.sub(_unescape, text).lower())
        out = []
        for value, lowered, encoded in zip(self.values, self._lower, self._encoded, strict=True):
            if any(lowered in view for view in views) or encoded[0] in low or any(e in text for e in encoded[1:]):
                out.append(value)
        return out

    def text(self, text: str) -> str:
        """Every text spelling of every secret replaced by REDACTED."""
        for value in self._suspects(text):
            text = _sub_chunked(_pattern(value), text.replace(value, REDACTED), _span(value))
        return text

    def body(self, text: str) -> str:
        """A response body: the text forms, then — if it is JSON — the decoded strings."""
        if not self._suspects(text):
            return text
        text = self.text(text)
        if text.lstrip()[:1] not in ('{', '[', '"'):
            return text
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        clean, changed = self._walk(doc)
        return orjson.dumps(clean).decode() if changed else text

    def value(self, doc: Any) -> Any:
        """A decoded JSON value with every key and string scrubbed (for mapped values)."""
        return self._walk(doc)[0] if self.values else doc

    def _walk(self, doc: Any) -> tuple[Any, bool]:
        changed = False

        def fix(s: str) -> str:
            nonlocal changed
            out = self.text(s)
            changed = changed or out != s
            return out

        root: list[Any] = [None]
        stack: list[tuple[Any, Any, Any]] = [(doc, root, 0)]
        while stack:                         # explicit stack: a deep document cannot overflow
            src, parent, key = stack.pop()
            if type(src) is str:
                parent[key] = fix(src)
            elif type(src) is dict:
                out: dict[str, Any] = {}
                parent[key] = out
                for k, v in src.items():
                    nk = fix(k)
                    out[nk] = None
                    stack.append((v, out, nk))
            elif type(src) is list:
                items: list[Any] = [None] * len(src)
                parent[key] = items
                for i, v in enumerate(src):
                    stack.append((v, items, i))
            else:
                parent[key] = src
        return root[0], changed
