"""A 0.0.0.0 listener of the service answers on every address of this machine, a public one too.

The broker counted a 0.0.0.0 / :: listener as covering loopback, private and link-local
addresses only, so with a public address on an interface, a workspace allow-listing
`http://<that address>:<the service's port>` had its requests sent to the service's own API
(only the API's marker check, server/selfguard.py, then refused them). A loopback listener
(how this process reaches the store, or the address a request arrived on) was matched on that
address only, though the server behind it may answer on every interface (a Redis started without
`bind`, a `serve --host 0.0.0.0` first called through 127.0.0.1). Now the kernel is asked
whether the address is this machine's (sandbox/sharing.py is_local_address).

The addresses used are in 100.64.0.0/10 (shared address space: neither private nor global to
Python's ipaddress, so none of the old checks covered it), put on `lo` for the test and removed
after; that needs root (CI's containers run as root), else the test is skipped.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterator
import pytest
from test_redteam13 import ask_own

from sandbox import Broker
from sandbox.sharing import is_local_address

# one address a test process (xdist workers run at once, each adding and removing its own)
EXTRA = f"100.64.{os.getpid() // 250 % 250 + 1}.{os.getpid() % 250 + 1}"
ELSEWHERE = "100.65.0.1"   # in no test process's range: never on this machine


@pytest.fixture
def extra_address() -> Iterator[str]:
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) to add an address with")
    add = subprocess.run(["ip", "addr", "add", f"{EXTRA}/32", "dev", "lo"], capture_output=True, text=True)
    if add.returncode != 0 and "File exists" not in add.stderr:
        pytest.skip(f"cannot add {EXTRA} to lo (needs root): {add.stderr.strip()}")
    try:
        yield EXTRA
    finally:
        subprocess.run(["ip", "addr", "del", f"{EXTRA}/32", "dev", "lo"], capture_output=True)


def test_the_kernel_says_which_addresses_are_this_machines(extra_address: str) -> None:
    assert is_local_address(ipaddress.ip_address(extra_address))
    assert is_local_address(ipaddress.ip_address("127.0.0.1"))
    assert not is_local_address(ipaddress.ip_address(ELSEWHERE))     # not ours
    assert not is_local_address(ipaddress.ip_address("8.8.8.8"))


@pytest.mark.parametrize("listener", ["0.0.0.0", "::", "127.0.0.1", "::1"])
def test_a_public_address_of_this_machine_does_not_reach_an_own_listener(
        extra_address: str, listener: str) -> None:
    port = 18473
    own = Broker.create(own_endpoints=lambda: [(listener, port)])
    try:
        assert not own.is_own(ipaddress.ip_address(ELSEWHERE), port)          # not this machine
        assert not own.is_own(ipaddress.ip_address(extra_address), port + 1)  # not our port
    finally:
        asyncio.run(own.aclose())
    url = f"http://{extra_address}:{port}"
    reply = ask_own(listener, port, url, url + "/v1/workspace")
    assert reply["ok"] is False and reply["kind"] == "refused", reply
    assert "own API or store" in reply["message"] and reply["sent"] == 0, reply
