"""The jail's file-system layer is read-only but reads all of "/" (Landlock READ_FILE/READ_DIR on
the root): past a RestrictedPython escape, a worker reads every file its uid may read. As root
the service drops workers to `nobody`; the shipped image runs as uid 10001, so there the workers
share the service's uid and could read the embedded store's data directory (every workspace's
tickets, the append-only file) and DESKFLOW_SECRETS_KEY_FILE (which opens every sealed secret).

Fixed: Landlock now grants reads only beneath sandbox/jail.py's `readable_paths` (the
interpreter's libraries, the sandbox and rules packages, shared libraries, time-zone data).

Simulated here whatever uid the tests run as: a 0600 file in a 0700 directory, both owned by the
uid the workers run as, stands for the service's data directory in a non-root deployment."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_jail import RawPool, attempt, refused

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/ns"), reason="needs Linux namespaces")


@pytest.fixture(scope="module")
def jailed() -> Iterator[RawPool]:
    pool = RawPool()
    yield pool
    pool.close()


def test_a_worker_cannot_read_the_services_own_files(jailed: RawPool) -> None:
    uid = int(jailed.raw("import os\nresult = os.getuid()"))
    top = Path(tempfile.mkdtemp(prefix="deskflow-jail-read-", dir="/tmp"))   # a path anyone may walk
    try:
        _try_read(jailed, uid, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _try_read(jailed: RawPool, uid: int, top: Path) -> None:
    data = top / "deskflow-data"
    data.mkdir(mode=0o700)
    secret = data / "deskflow-secrets.key"
    secret.write_text("the key that opens every workspace's secrets")
    secret.chmod(0o600)
    if os.getuid() == 0:   # give both to the workers' uid, as the service's own files would be
        for p in (data, secret):
            os.chown(p, uid, -1)
    top.chmod(0o711)
    assert jailed.raw(attempt(f"import os\nos.stat({str(secret)!r})")) == "done"   # reachable
    outcome = jailed.raw(attempt(f"open({str(secret)!r}).read()"))
    assert refused(outcome), outcome
