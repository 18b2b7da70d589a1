"""JSON logs: one object per line with time, level, logger, message and the ids bound to the work;
secrets scrubbed; and a real `deskflow serve` whose whole output never shows the root token or an
API key, and which stops cleanly on SIGTERM."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from server.logs import JsonFormatter, configure_logging, log_context, logging_config, secrets_of
from server.settings import Settings
from testkit import free_port, wait_answering

ROOT = "root-token-that-must-never-be-logged"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through JsonFormatter (secret: ROOT) into a buffer."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter([ROOT]))
    logger = logging.getLogger("deskflow.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, buf
    finally:
        logger.removeHandler(handler)


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buf.getvalue().splitlines()]


def test_one_json_object_per_line_with_extra_and_bound_ids(captured) -> None:  # type: ignore[no-untyped-def]
    logger, buf = captured
    logger.info("plain %s", "message")
    with log_context(workspace="ws_1", event_id="evt-9", ticket_id=None):
        with log_context(run_id="run_abc"):
            logger.warning("applying", extra={"partition": 3, "ticket_id": "T-1"})
        logger.error("after the inner block")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    first, second, third, fourth = _lines(buf)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["message"] == "plain message" and first["level"] == "INFO"
    assert first["logger"] == "deskflow.test-logs"
    assert str(first["time"]).endswith("Z") and "T" in str(first["time"])
    assert second == {**second, "workspace": "ws_1", "event_id": "evt-9", "run_id": "run_abc",
                      "partition": 3, "ticket_id": "T-1", "level": "WARNING"}
    assert "run_id" not in third and third["event_id"] == "evt-9"
    assert "ValueError: boom" in str(fourth["exc"]) and "event_id" not in fourth


def test_secrets_keys_and_bearer_credentials_are_scrubbed(captured) -> None:  # type: ignore[no-untyped-def]
    logger, buf = captured
    key = "df_" + "A1b2-C3d4_E5f6G7h8I9j0K1l2M3n4O5p6Q7"
    logger.info("root %s key %s", ROOT, key)
    logger.info("headers", extra={"auth": f"Bearer {ROOT}x", "body": {"token": ROOT}})
    logger.info('GET /v1/x?key=%s "Authorization: bearer abc.def"', key)
    text = buf.getvalue()
    assert ROOT not in text and key not in text and "abc.def" not in text
    a, b, c = _lines(buf)
    assert a["message"] == "root [redacted] key [redacted]"
    assert b["auth"] == "Bearer [redacted]" and "[redacted]" in str(b["body"])
    assert "bearer [redacted]" in str(c["message"])


def test_secrets_of_settings_include_tokens_and_the_redis_password() -> None:
    s = Settings(root_token=ROOT, metrics_token="metrics-secret-1",
                 redis_url="redis://user:redis-pass-xyz@127.0.0.1:6379/0")
    found = secrets_of(s)
    assert {ROOT, "metrics-secret-1", "redis-pass-xyz"} <= set(found)
    assert "127.0.0.1" not in found and not any("redis://" in x for x in found)
    assert "deskflow-data.json" not in found


def test_configure_logging_routes_uvicorn_through_the_root_handler() -> None:
    config = logging_config(Settings(root_token=ROOT), "warning")
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.access"] == {"handlers": [], "propagate": True,
                                                   "level": "WARNING"}
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(Settings(root_token=ROOT), "info")
        (handler,) = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
        assert ROOT in handler.formatter.secrets  # type: ignore[union-attr]
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logging.captureWarnings(False)


def test_serve_never_logs_the_root_token_or_keys_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data.json"
    env = {**os.environ, "DESKFLOW_ROOT_TOKEN": ROOT, "DESKFLOW_DATA_FILE": str(data),
           "DESKFLOW_LOG_LEVEL": "debug"}
    env.pop("DESKFLOW_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_answering(base, proc=proc, what="serve")
        root = {"Authorization": f"Bearer {ROOT}"}
        r = httpx.post(f"{base}/v1/workspaces", json={"name": "acme"}, headers=root)
        assert r.status_code == 201, r.text
        admin = r.json()["admin_key"]
        r = httpx.post(f"{base}/v1/keys", json={"role": "ingest", "name": "i"},
                       headers={"Authorization": f"Bearer {admin}"})
        ingest = r.json()["key"]
        r = httpx.post(f"{base}/v1/events?wait=true", headers={"Authorization": f"Bearer {ingest}"},
                       json={"id": "e1", "type": "ticket.created", "ticket": {"id": "T-1"}})
        assert r.status_code == 200, r.text
        assert httpx.get(f"{base}/v1/rules", headers=root).status_code == 403  # root may not
        assert httpx.get(f"{base}/v1/rules?key={admin}&token={ROOT}",
                         headers={"Authorization": "Bearer df_not_a_real_key_0000000000"}
                         ).status_code == 401
        assert httpx.get(f"{base}/nowhere/{ROOT}").status_code == 404
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    # what the store kept: the managed server's data directory (its AOF), or the snapshot file
    stored = [f for f in [data, *tmp_path.joinpath("data").rglob("*")] if f.is_file()]
    assert stored, "the store wrote nothing to disk"
    everything = out.decode() + err.decode() + "".join(
        f.read_bytes().decode("utf-8", "replace") for f in stored)
    for secret in (ROOT, admin, ingest):
        assert secret not in everything
    lines = [orjson.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    access = [x for x in lines if x["logger"] == "uvicorn.access"]
    # the requests were logged, with the key and token in the query string scrubbed
    assert any("/v1/rules?key=[redacted]&token=[redacted]" in str(x["message"]) for x in access)
    assert any("/nowhere/[redacted]" in str(x["message"]) for x in access)
    assert any(x["logger"] == "deskflow.cli" and "SIGTERM" in str(x["message"]) for x in lines)
    assert "saved the embedded store" in out.decode() or "stopped the embedded store" in out.decode()
