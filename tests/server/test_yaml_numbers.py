"""A YAML number too long for 64 bits is a 422 before it is built: int() of a 5,000-digit plain
scalar raised ValueError past the loader's 64-bit check (a 500 on POST /v1/import)."""

from __future__ import annotations

import pytest

from server.errors import Unprocessable
from server.yamlsafe import load_document


@pytest.mark.parametrize("scalar", ["9" * 5_000, "-" + "9" * 4_301, "0x" + "f" * 2_000,
                                    "1_" * 500 + "1", "9" * 41])
def test_an_overlong_number_is_refused_not_a_500(scalar: str) -> None:
    with pytest.raises(Unprocessable) as info:
        load_document(f"rules: {scalar}\n")
    assert "64 bits" in info.value.message


def test_long_text_that_is_not_a_number_still_loads() -> None:
    assert load_document("a: " + "x" * 5_000 + "\nb: '" + "9" * 5_000 + "'\n") == {
        "a": "x" * 5_000, "b": "9" * 5_000}
    assert load_document("a: 9223372036854775807") == {"a": 2 ** 63 - 1}


def test_through_the_import_route(ws) -> None:  # type: ignore[no-untyped-def]
    r = ws.client.post("/v1/import?dry_run=true", content=("rules: " + "9" * 5_000).encode(),
                       headers={**ws.h(), "Content-Type": "application/yaml"})
    assert r.status_code == 422, r.text
    assert "64 bits" in r.json()["error"]["message"]
