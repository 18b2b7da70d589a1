"""A slowly growing allocation always ends as memory_limit, never sandbox_crash (issue 13).

The worker used to build the memory_limit message while the address-space limit was still
set: the allocation raised MemoryError again inside the handler and the worker died (status 1).
Every shape is run several times: which allocation fails first varies from run to run."""
from __future__ import annotations

import pytest

from sandbox import Limits

GROWTH = {
    "small_dicts": "x = []\nwhile True:\n    x.append({})",
    "dicts_with_items": "x = []\nwhile True:\n    x.append({'n': len(x)})",
    "nested_dicts": "x = {}\nwhile True:\n    x = {'x': x, 'y': [1, 2]}",
    "lists": "x = []\nwhile True:\n    x.append([len(x)])",
    "strings": "x = []\nwhile True:\n    x.append(str(len(x)))",
    "caught_then_reported": "x = []\ntry:\n    while True:\n        x.append({})\nexcept Exception as exc:\n"
                            "    return {'custom': {'e': str(exc) + repr(len(x)) * 1000}}",
    "logged_while_growing": "x = []\nwhile True:\n    x.append({})\n    if len(x) % 100000 == 0:\n        ctx.log('at', len(x))",
}
LIMITS = Limits(memory_bytes=32 * 1024 * 1024, cpu_s=20, wall_s=30)


def body(code: str) -> str:
    return "def run(event, ticket, ctx):\n" + "".join(f"    {line}\n" for line in code.split("\n"))


@pytest.mark.parametrize("shape", sorted(GROWTH))
def test_growing_allocations_always_end_as_memory_limit(sandbox, shape: str) -> None:
    for attempt in range(3):
        result = sandbox.run(body(GROWTH[shape]), limits=LIMITS)
        assert result.error is not None, (shape, attempt, result)
        assert result.error["code"] == "memory_limit", (shape, attempt, result.error)
        assert result.error["message"] == "the script used more than 32 MiB of memory"
        assert result.updates is None
    sandbox.still_serving()


@pytest.mark.parametrize("handler", ["except Exception:", "except:", "except Exception as e:",
                                     "except (ValueError, Exception) as e:"])
def test_a_caught_memory_error_still_ends_the_run_as_memory_limit(sandbox, handler: str) -> None:
    """The memory freed by dropping `x` let a handler return normally: the run looked fine."""
    code = f"x = []\ntry:\n    while True:\n        x.append({{}})\n{handler}\n    x = None\n    return {{'add_tags': ['survived']}}"
    result = sandbox.run(body(code), limits=LIMITS)
    assert result.error is not None and result.error["code"] == "memory_limit", result
    assert result.updates is None
    ok = sandbox.run(body("try:\n    int('x')\nexcept ValueError as e:\n    return {'add_tags': ['caught ' + str(e)[:7]]}"))
    assert ok.error is None and ok.updates == {"add_tags": ["caught invalid"]}
