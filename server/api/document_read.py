"""An import document's body read into data, as a check of the check pool (server/checkpool.py).

Why not in the API process: a YAML document as large as the limits admit (1 MiB, 100,000 values)
takes about half a second of the parser's Python, and the walks after it (dates to text, the
depth check) about 40 ms more. In a thread of the API process that held the GIL every other
workspace's requests wait on (another workspace's p99 138 ms while one posted such documents,
tests/server/test_tenant_isolation.py); the walks ran on the event loop itself. So the whole read
is one check: the body goes to a check process as bytes and comes back as the document's compact
JSON, which the API process reads in a few milliseconds of C (orjson) and sends on, as it is, to
the document's own check. A small body (FAST_BYTES) is read in the API process, as before.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.errors import ApiError, BadRequest, Unprocessable

__all__ = ["read_body", "document_of"]

Answer = tuple[Any, ...]   # ("doc", JSON bytes) or ("refused", status, code, message, details)


def read_body(body: bytes, is_yaml: bool, depth_limit: int) -> Answer:
    """The body as a plain document's compact JSON, or why it is refused (a 400 or a 422), as
    plain data: what crosses back from a check process is never an exception object."""
    import yaml

    from server.api.common import _too_deep, json_depth, problem
    from server.api.document import plain
    from server.yamlsafe import load_document

    try:
        try:
            doc = plain(load_document(body, depth_limit)) if is_yaml else orjson.loads(body)
        except RecursionError:   # PyYAML recurses once per nesting level
            raise _too_deep(depth_limit, "too many") from None
        except (yaml.YAMLError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"The document does not parse: {exc}", code="invalid_document") from exc
        depth = json_depth(doc)
        if depth > depth_limit:
            raise _too_deep(depth_limit, str(depth))
        if not isinstance(doc, dict):
            raise Unprocessable("The document must be a mapping (deskflow, rules, groups, ...).",
                                details=[problem("", "expected a mapping at the top")])
        return ("doc", orjson.dumps(doc))
    except ApiError as exc:
        return ("refused", exc.status, exc.code, exc.message, exc.details)


def document_of(answer: Answer) -> dict[str, Any]:
    """The document read_body answered, or its refusal raised here."""
    if answer[0] == "doc":
        doc: dict[str, Any] = orjson.loads(answer[1])
        return doc
    _, status, code, message, details = answer
    raise (BadRequest if status == 400 else Unprocessable)(message, code=code, details=details)
