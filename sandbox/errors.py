"""The sandbox package's exceptions and run-error codes.

    SandboxError            base of everything raised by this package
    ├── LimitsError         a per-script limit outside the operator maxima (-> 422)
    ├── AllowListError      a bad allow-list entry (-> 422), names the entry and what to write instead
    ├── BrokerError         an HTTP call that did not produce a response (raised parent-side only)
    │   ├── CallRefused     allow-list, address rules, scheme, secret name: the script may catch it
    │   └── CallLimit       call cap or response size: the script may catch it, the run still fails
    ├── PoolClosed          run() on a pool that was closed
    └── JailUnavailable     require_jail and a jail layer the kernel does not offer (names them)

A failed *run* is not an exception: `ScriptResult.error` is `{"code": ..., "message": ...}` with
one of RUN_ERROR_CODES (user mistakes are data; API.md "Script details").
"""
from __future__ import annotations

RUN_ERROR_CODES = frozenset({
    "timeout", "cpu_limit", "memory_limit", "http_calls_limit", "response_size_limit",
    "output_size_limit", "log_limit", "invalid_output", "script_error", "sandbox_crash",
    "busy",     # every worker the workspace may use is taken for longer than the queue wait
})


class SandboxError(Exception):
    pass


class LimitsError(SandboxError, ValueError):
    pass


class AllowListError(SandboxError, ValueError):
    """`entry` is the offending allow-list string, `reason` what is wrong with it."""

    def __init__(self, entry: str, reason: str) -> None:
        self.entry = entry
        self.reason = reason
        super().__init__(f"allow-list entry {entry!r}: {reason}")


class BrokerError(SandboxError):
    code = "refused"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CallRefused(BrokerError):
    code = "refused"


class CallLimit(BrokerError):
    """`code` is the run error code the breach turns into (`http_calls_limit`, `response_size_limit`)."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        super().__init__(reason)


class PoolClosed(SandboxError):
    pass


class JailUnavailable(SandboxError):
    """The pool was asked to require the whole jail and a worker lacks `layers`."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = layers
        super().__init__("the sandbox jail is incomplete: missing " + ", ".join(layers)
                         + " (DESKFLOW_SANDBOX_REQUIRE_JAIL=1 refuses to run without it)")
