"""Resource exhaustion: every breach fails the run with the code naming the limit, within a
generous bound, and the pool keeps serving. Timing asserts are loose on purpose (shared CPUs)."""
from __future__ import annotations

import os
import signal
import time

import pytest

from sandbox import Limits, LimitsError, MAXIMA
from sandbox.limits import parse_seconds

S = "import json, re, math, datetime\n\ndef run(event, ticket, ctx):\n"
MIB = 1024 * 1024


def body(code: str) -> str:
    return S + "".join(f"    {line}\n" for line in code.strip("\n").split("\n"))


CPU_HOGS = {
    "loop": "while True:\n    pass",
    "regex_backtracking": "re.match(r'(a+)+$', 'a' * 64 + 'b')",
    "big_integer": "x = 7 ** (10 ** 9)",
    "nested_comprehension": "x = sum(1 for a in range(10**6) for b in range(10**6))",
}


@pytest.mark.parametrize("name", sorted(CPU_HOGS))
def test_cpu_hogs_hit_the_cpu_limit(sandbox, name: str) -> None:
    started = time.monotonic()
    # wall time far above the CPU limit: on a loaded machine CPU seconds accrue slower than wall ones
    result = sandbox.run(body(CPU_HOGS[name]), limits=Limits(cpu_s=1, wall_s=30))
    assert result.error is not None, result
    # a big power may run out of memory before it runs out of time; both name a limit
    allowed = {"cpu_limit", "memory_limit"} if name == "big_integer" else {"cpu_limit"}
    assert result.error["code"] in allowed, result.error
    assert time.monotonic() - started < 29
    sandbox.still_serving()


def test_wall_clock_kills_and_replaces_the_worker(sandbox) -> None:
    before = sandbox.pool.replaced
    started = time.monotonic()
    result = sandbox.run(body("while True:\n    pass"), limits=Limits(cpu_s=20, wall_s=1))
    assert result.error == {"code": "timeout", "message": "the run took longer than 1s (wall clock)"}
    assert time.monotonic() - started < 8
    assert sandbox.pool.replaced > before
    sandbox.still_serving()


@pytest.mark.parametrize("code", [
    "x = 'a' * (10 ** 9)",
    "x = [0] * (10 ** 9)",
    "x = list(range(10 ** 8))",
    "d = {}\ni = 0\nwhile True:\n    d[i] = str(i) * 10\n    i += 1",
    "x = 'ab' * (200 * 1024 * 1024)",
])
def test_memory_hogs_hit_the_memory_limit(sandbox, code: str) -> None:
    result = sandbox.run(body(code), limits=Limits(cpu_s=5, wall_s=20))
    assert result.error is not None and result.error["code"] == "memory_limit", result.error
    sandbox.still_serving()


def test_the_memory_limit_is_per_script(sandbox) -> None:
    source = body("x = 'a' * (64 * 1024 * 1024)\nreturn {'custom': {'n': len(x)}}")
    assert sandbox.run(source).error is None
    small = sandbox.run(source, limits=Limits(memory_bytes=32 * MIB))
    assert small.error["code"] == "memory_limit"


def test_recursion_is_a_script_error(sandbox) -> None:
    result = sandbox.run("def f(n):\n    return f(n + 1)\n\ndef run(event, ticket, ctx):\n    return f(0)\n")
    assert result.error["code"] == "script_error"
    assert "RecursionError" in result.error["message"] and result.error["message"].startswith("Line 2:")
    sandbox.still_serving()


def test_huge_int_to_text_is_a_script_error(sandbox) -> None:
    result = sandbox.run(body("return {'custom': {'x': str(10 ** 5000)}}"))
    assert result.error["code"] == "script_error" and "ValueError" in result.error["message"]


def test_a_worker_killed_by_a_signal_is_a_sandbox_crash_and_is_replaced(sandbox) -> None:
    # Hashing a 300,000-deep tuple overflows CPython's C stack (tuplehash does not check depth).
    before = sandbox.pool.replaced
    result = sandbox.run(body("t = ()\nfor i in range(300000):\n    t = (t,)\nreturn {'custom': {'x': len({t: 1})}}"))
    assert result.error is not None
    assert result.error["code"] in ("sandbox_crash", "script_error"), result.error
    if result.error["code"] == "sandbox_crash":
        assert "SIGSEGV" in result.error["message"]
        assert sandbox.pool.replaced > before
    sandbox.still_serving()


def test_an_idle_worker_killed_from_outside_does_not_take_the_pool_down(sandbox) -> None:
    pid = sandbox.pool.pids[0]
    os.kill(pid, signal.SIGKILL)           # one of the pool's own workers, by its id
    results = [sandbox.run(body("return {'add_tags': ['ok']}")) for _ in range(4)]
    failures = [r.error for r in results if r.error is not None]
    assert all(f["code"] == "sandbox_crash" for f in failures)
    assert len(failures) <= 1
    sandbox.still_serving()


def test_output_over_the_limit(sandbox) -> None:
    big = sandbox.run(body("return {'custom': {'x': 'a' * 70000}}"))
    assert big.error["code"] == "output_size_limit"
    many = sandbox.run(body("return {'add_tags': [str(i) for i in range(100000)]}"))
    assert many.error["code"] == "output_size_limit"
    fits = sandbox.run(body("return {'custom': {'x': 'a' * 70000}}"), limits=Limits(output_bytes=128 * 1024))
    assert fits.error is None


def test_log_lines_over_the_limit_fail_the_run_even_if_caught(sandbox) -> None:
    result = sandbox.run(body(
        "for i in range(1000):\n    try:\n        ctx.log('line', i)\n    except Exception:\n        pass\n"
        "return {'add_tags': ['x']}"))
    assert result.error["code"] == "log_limit"
    assert result.updates is None and len(result.logs) == 200


def test_long_log_lines_are_cut(sandbox) -> None:
    result = sandbox.run(body("ctx.log('x' * 100000)\nprint('y' * 5000)"))
    assert result.error is None
    assert all(len(line.encode()) <= 1024 for line in result.logs)
    assert result.logs[0].endswith("[truncated]")


def test_one_runaway_script_does_not_stall_the_others(sandbox) -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        hog = ex.submit(sandbox.run, body("while True:\n    pass"), limits=Limits(cpu_s=20, wall_s=3))
        time.sleep(0.2)
        started = time.monotonic()
        # Another workspace: the hog's own workspace may hold only its share (half the pool).
        quick = [sandbox.run(body("return {'add_tags': ['quick']}"), workspace="other")
                 for _ in range(20)]
        quick_s = time.monotonic() - started
        assert hog.result(30).error["code"] == "timeout"
    assert all(r.error is None for r in quick)
    assert quick_s < 2.5        # served by the other worker while the hog held its own


def test_limits_validation() -> None:
    assert Limits.for_script("30s").wall_s == 30
    assert Limits.for_script("500ms").wall_s == 0.5
    with pytest.raises(LimitsError, match="above the operator maximum"):
        Limits.for_script("31s")
    for bad in ("", "5", "5 s", "-1s", "0s", "1.5s"):
        with pytest.raises(LimitsError):
            parse_seconds(bad)
    with pytest.raises(LimitsError):
        Limits(memory_bytes=MAXIMA.memory_bytes + 1)
    with pytest.raises(LimitsError):
        Limits(http_calls=0)
    assert Limits().as_dict()["output_bytes"] == 64 * 1024
