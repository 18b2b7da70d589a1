"""The README's and scripts/README.md's curl examples run verbatim against a real
`deskflow serve --demo` (issue 12, item 9), so the docs cannot drift from the service.

The only substitution is the one the README asks of its reader: the values of the variables its
tour defines (`URL`, `ADMIN`, `INGEST`) become the served URL and the keys `serve --demo` printed.
Every block with a `curl` in it runs, in document order, in one `bash -euo pipefail` whose `curl`
fails on any HTTP status >= 400 (`--fail-with-body`), so an example that answers 415 or 404 fails
here with the answer it got. Blocks that need Docker (the compose quick start) are left out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from testkit import free_port, wait_answering

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "scripts" / "README.md"]
VARIABLES = ("URL", "ADMIN", "INGEST")


def _blocks(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each ```sh block."""
    out, current, start = [], None, 0
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if current is None and re.match(r"^```(sh|bash|shell)\s*$", line):
            current, start = [], n
        elif current is not None and line.strip() == "```":
            out.append((start, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line)
    return out


def _script(values: dict[str, str]) -> str:
    parts = ["set -euo pipefail",
             'curl() { command curl --show-error --fail-with-body "$@"; echo; }']
    defined: set[str] = set()
    for path in DOCS:
        for line, text in _blocks(path):
            if any(re.match(rf"^{v}=", text, re.M) for v in VARIABLES):
                for name in VARIABLES:
                    text, n = re.subn(rf"^{name}=\S+", f"{name}={values[name]}", text, flags=re.M)
                    defined |= {name} if n else set()
                parts.append(f"echo '--- {path.name}:{line} (variables)'\n{text}")
            elif "curl" in text and "docker" not in text:
                parts.append(f"echo '--- {path.relative_to(ROOT)}:{line}'\n{text}")
    assert defined == set(VARIABLES), f"the README's tour must define {VARIABLES}, found {defined}"
    return "\n".join(parts) + "\n"


def test_the_docs_curl_examples_run_against_serve_demo(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DESKFLOW_DATA_FILE": str(tmp_path / "d.json"),
           "DESKFLOW_SECRETS_KEY_FILE": str(tmp_path / "secrets.key"), "DESKFLOW_PORT": str(port)}
    env.pop("DESKFLOW_REDIS_URL", None)
    with subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--demo"], env=env,
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as proc:
        try:
            assert proc.stdout is not None
            keys: dict[str, str] = {}
            for line in proc.stdout:
                if m := re.match(r"\s+(admin|ingest) key:\s+(\S+)", line):
                    keys[m.group(1)] = m.group(2)
                if "API and worker on" in line:
                    break
            url = f"http://127.0.0.1:{port}"
            wait_answering(url, path="/readyz", proc=proc, timeout=30, what="serve --demo")
            values = {"URL": url, "ADMIN": keys["admin"], "INGEST": keys["ingest"]}
            script = _script(values)
            (tmp_path / "docs.sh").write_text(script)
            run = subprocess.run(["bash", str(tmp_path / "docs.sh")], cwd=ROOT, capture_output=True,
                                 text=True, timeout=120, env={**os.environ, "PATH": os.environ["PATH"]})
            assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
            # The tour's claims hold too: the rule routed T-1, the demo rule tagged it.
            ticket = httpx.get(f"{url}/v1/tickets/T-1", timeout=5,
                               headers={"Authorization": f"Bearer {keys['admin']}"}).json()
            assert ticket["department"] == "finance" and "routed" in ticket["tags"]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
