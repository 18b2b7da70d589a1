"""A real Redis Cluster on this machine: 3 masters + 3 replicas started from the `redis-server`
binary, each on its own free port with its own private directory, joined by
`redis-cli --cluster create ... --cluster-replicas 1`.

    with LocalCluster() as cluster:
        url = cluster.url                  # redis://127.0.0.1:<a master's port>/0
        cluster.kill_master_of(slot)       # kill -9; waits until a replica is promoted
        cluster.reshard(src, dst, slots)   # redis-cli --cluster reshard, live

Nothing here touches the shared Redis at 127.0.0.1:6379. `--cluster-node-timeout 1000` makes a
failover take about 1-3 s on an idle machine; persistence is off (`--save ''`, no AOF) because the
copies that survive a kill are the replicas', which is what the failover tests are about.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from testkit import free_cluster_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"



@dataclass
class Node:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5, socket_connect_timeout=1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class LocalCluster:
    masters: int = 3
    replicas: int = 1
    timeout: float = 60.0
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="deskflow-cluster-")))
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        live = [n for n in self.nodes if n.alive()]
        return f"redis://127.0.0.1:{live[0].port}/0"

    def _start_node(self, node: Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        node.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(node.port), "--bind", "127.0.0.1", "--dir", str(node.dir),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", "1000", "--save", "", "--appendonly", "no",
             # a replica's first sync at once: the default waits 5 s for more replicas to
             # batch a diskless transfer, 5 s of every cluster start and every rejoin
             "--repl-diskless-sync-delay", "0",
             "--protected-mode", "no", "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> LocalCluster:
        taken: set[int] = set()
        for i in range((1 + self.replicas) * self.masters):
            port = free_cluster_port(taken)
            taken |= {port, port + 10000}
            node = Node(port=port, dir=self.root / f"node-{i}")
            self.nodes.append(node)
            self._start_node(node)
        for node in self.nodes:
            self._wait_ping(node)
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run([REDIS_CLI, "--cluster", "create", *addrs, "--cluster-replicas",
                        str(self.replicas), "--cluster-yes"], check=True, capture_output=True,
                       timeout=self.timeout)
        self.wait_ok()
        if self.replicas:
            self.wait_replicated()
        return self

    def _wait_ping(self, node: Node) -> None:
        deadline = time.monotonic() + self.timeout
        with node.client() as c:
            while True:
                try:
                    c.ping()
                    return
                except redis.ConnectionError:
                    if node.proc is not None and node.proc.poll() is not None:
                        raise RuntimeError(f"redis-server on {node.port} exited") from None
                    assert time.monotonic() < deadline, f"redis-server on {node.port} did not start"
                    time.sleep(0.05)

    def _view(self, node: Node) -> tuple[str, list[dict[str, str]]]:
        """(cluster_state, CLUSTER NODES rows) as `node` sees them."""
        with node.client() as c:
            state = c.execute_command("CLUSTER", "INFO")
            rows = []
            for line in c.execute_command("CLUSTER", "NODES").splitlines():
                parts = line.split()
                rows.append({"id": parts[0], "addr": parts[1].split("@")[0], "flags": parts[2],
                             "master": parts[3], "link": parts[7], "slots": " ".join(parts[8:])})
        text = state if isinstance(state, str) else "\n".join(f"{k}:{v}" for k, v in state.items())
        ok = "cluster_state:ok" in text
        return ("ok" if ok else "fail"), rows

    def wait_ok(self) -> None:
        """Every live node says cluster_state:ok and every slot has a live, unfailed master."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if all(self._settled(n) for n in self.nodes if n.alive()):
                    return
            except (redis.RedisError, OSError):
                pass
            assert time.monotonic() < deadline, "cluster did not reach cluster_state:ok"
            time.sleep(0.1)

    def _settled(self, node: Node) -> bool:
        state, rows = self._view(node)
        if state != "ok":
            return False
        masters = [r for r in rows if "master" in r["flags"] and r["slots"]]
        return all("fail" not in r["flags"] and r["link"] == "connected" or "myself" in r["flags"]
                   for r in masters)

    def node_at(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def master_of(self, slot: int) -> Node:
        with self.nodes_alive()[0].client() as c:
            for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return self.node_at(int(master[1]))
        raise LookupError(slot)

    def slots_of(self, port: int) -> list[int]:
        """The slots the master on `port` owns."""
        out: list[int] = []
        with self.nodes_alive()[0].client() as c:
            for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if int(master[1]) == port:
                    out.extend(range(int(start), int(end) + 1))
        return out

    def nodes_alive(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def master_ids(self) -> dict[int, str]:
        """port -> node id of every live master that owns slots."""
        _, rows = self._view(self.nodes_alive()[0])
        return {int(r["addr"].split(":")[1]): r["id"] for r in rows
                if "master" in r["flags"] and "fail" not in r["flags"] and r["slots"]}

    def kill(self, node: Node) -> None:
        """kill -9: no shutdown, nothing flushed to the replica that it did not have already."""
        if node.proc is not None:
            node.proc.kill()
            node.proc.wait()
            node.proc = None

    def kill_master_of(self, slot: int, *, wait: bool = True) -> Node:
        victim = self.master_of(slot)
        self.kill(victim)
        if wait:
            self.wait_failover(victim)
        return victim

    def wait_failover(self, victim: Node) -> None:
        """Until some live node owns every slot again (the victim's replica was promoted)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if all(self._settled(n) for n in self.nodes_alive()) and \
                        victim.port not in self.master_ids():
                    return
            except (redis.RedisError, OSError):
                pass
            assert time.monotonic() < deadline, "no replica was promoted"
            time.sleep(0.1)

    def restart(self, node: Node) -> None:
        """Start a killed node again (it rejoins as a replica of its promoted former replica)."""
        self._start_node(node)
        self._wait_ping(node)

    def wait_replicated(self) -> None:
        """Until every master that owns slots has a connected replica in sync."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                ok = True
                for port in self.master_ids():
                    with self.node_at(port).client() as c:
                        info = c.info("replication")
                    slaves = [v for k, v in info.items() if k.startswith("slave") and
                              isinstance(v, dict)]
                    ok &= any(s.get("state") == "online" for s in slaves)
                if ok:
                    return
            except (redis.RedisError, OSError):
                pass
            assert time.monotonic() < deadline, "a master has no replica in sync"
            time.sleep(0.1)

    def reshard(self, src: int, dst: int, slots: int) -> None:
        """Move `slots` slots from master port `src` to master port `dst` while serving."""
        ids = self.master_ids()
        # redis-cli refuses to reshard until every node's view of the slots agrees ("Nodes don't
        # agree about configuration!"), which lags a failover or a previous move by a moment
        deadline = time.monotonic() + self.timeout
        while True:
            check = subprocess.run([REDIS_CLI, "--cluster", "check", f"127.0.0.1:{dst}"],
                                   capture_output=True, text=True, timeout=self.timeout)
            if "All nodes agree about slots configuration" in check.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        out = subprocess.run([REDIS_CLI, "--cluster", "reshard", f"127.0.0.1:{dst}",
                              "--cluster-from", ids[src], "--cluster-to", ids[dst],
                              "--cluster-slots", str(slots), "--cluster-yes",
                              "--cluster-pipeline", "100"],
                             capture_output=True, text=True, timeout=self.timeout * 2)
        assert out.returncode == 0, (  # redis-cli says why on stdout ([ERR] ...)
            f"redis-cli --cluster reshard failed ({out.returncode}): "
            f"{[ln for ln in out.stdout.splitlines() if 'ERR' in ln][-5:]} {out.stderr[-500:]}")

    def move_slots(self, src: int, dst: int, slots: list[int]) -> None:
        """Move exactly these slots from master port `src` to master port `dst` while serving,
        the way `redis-cli --cluster reshard` moves each slot: IMPORTING on dst, MIGRATING on src,
        MIGRATE its keys in batches (clients meet ASK meanwhile), then SETSLOT NODE on every
        master (then MOVED). The quick reshard test moves the slots that hold its keys only; moving
        the source's lowest slots up to those (reshard's only choice) took ~3000 slots each way."""
        ids = self.master_ids()
        with self.node_at(src).client() as s, self.node_at(dst).client() as d:
            for slot in slots:
                d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
                s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
                while keys := s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                    s.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
                d.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
                s.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
                for port in ids:
                    if port not in (src, dst):
                        with self.node_at(port).client() as o:
                            o.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[dst])

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
                node.proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def flush(cluster: LocalCluster) -> None:
    """Empty every master (between tests that share one cluster)."""
    for port in cluster.master_ids():
        with cluster.node_at(port).client() as c:
            c.flushall()


__all__ = ["LocalCluster", "Node", "flush", "free_cluster_port"]
