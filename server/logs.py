"""Structured logs: one JSON object per line on stderr, secrets scrubbed.

Each line has `time` (UTC, ms), `level`, `logger` and `message`, then the ids that locate it:
whatever a caller passed as `extra={...}` (event_id, run_id, ticket_id, workspace, partition...)
and whatever is bound around the code that logged with `log_context(...)` -- the worker binds an
event's ids around its apply, so every line logged while applying it (rules, scripts, store
retries) carries them without each call site repeating them. Exceptions come as `exc`.

Never logged: the root token, the metrics token, any other secret-bearing setting, a Redis URL's
password, API keys (`df_...`) and `Bearer` credentials. They are scrubbed from every line, uvicorn's
access log (a key in a query string) included -- the last line of defence, not the first: code
should not log them in the first place.

`logging_config(settings)` is a `logging.config.dictConfig` dict; the same dict goes to uvicorn
(`log_config=`) so its worker processes (`deskflow api --workers N`) log the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.config
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from types import MappingProxyType
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from server.settings import Settings

__all__ = ["JsonFormatter", "log_context", "logging_config", "configure_logging", "secrets_of"]

_IDS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "deskflow_log_ids", default=MappingProxyType({}))  # read-only: a shared default must not be mutated
# Attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
    "color_message",  # uvicorn's coloured copy of the message
}
# API keys as catalog.create_key makes them, and bearer credentials wherever they appear.
_KEY_RE = re.compile(r"df_[A-Za-z0-9_\-]{16,}")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")
_SECRET_FIELD_WORDS = ("token", "secret", "key", "password")
REDACTED = "[redacted]"


@contextlib.contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Bind ids (event_id=..., run_id=...) to every log line of this task until the block ends.
    None values are left out. Context variables follow asyncio tasks and asyncio.to_thread."""
    token = _IDS.set({**_IDS.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _IDS.reset(token)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the settings hold: fields named like a token, secret, key or password, and the
    Redis URL's password. Short values are ignored (scrubbing "1" would eat every digit)."""
    found = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name.endswith(("_file", "_path", "_url")):
            continue  # where a secret is, not the secret (the Redis password is taken below)
        if isinstance(value, str) and any(w in f.name for w in _SECRET_FIELD_WORDS):
            found.append(value)
    if settings.redis_url:
        with contextlib.suppress(ValueError):
            password = urlsplit(settings.redis_url).password
            if password:
                found.append(password)
    return sorted({s for s in found if len(s) >= 6}, key=len, reverse=True)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; `secrets` are replaced by "[redacted]" wherever they appear."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _BEARER_RE.sub(lambda m: m.group(1) + REDACTED, text)
        return _KEY_RE.sub(REDACTED, text)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.scrub(orjson.dumps(value, default=str).decode())

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.scrub(record.getMessage()),
        }
        for key, value in _IDS.get().items():
            out.setdefault(key, self._clean(value))
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = self._clean(value)
        if record.exc_info:
            out["exc"] = self.scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = self.scrub(record.exc_text)
        if record.stack_info:
            out["stack"] = self.scrub(self.formatStack(record.stack_info))
        return orjson.dumps(out, default=str).decode()


def logging_config(settings: Settings, level: str = "INFO") -> dict[str, Any]:
    """The dictConfig of every deskflow process: JSON on stderr through the root logger; uvicorn's
    loggers hand their lines to it (their own handlers removed)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "server.logs.JsonFormatter",
                                "secrets": secrets_of(settings)}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {name: {"handlers": [], "propagate": True, "level": level}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def configure_logging(settings: Settings, level: str = "INFO") -> dict[str, Any]:
    """Set this process's logging up; returns the config (pass it to uvicorn as log_config)."""
    config = logging_config(settings, level)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    return config
