"""A real local Ray cluster for the tests: a head node and worker nodes on loopback, each
with its own temp dir and one CPU, no dashboard, every port chosen free. ``stop`` ends
exactly the processes these nodes started (found by their temp dirs and ports), not any
other Ray on the machine (``ray stop`` would end them all)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")
FAST_FAILURE_DETECTION = {  # a killed node is declared dead in about a second, not 15
    "RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "2",
}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _processes_with(markers: list[str]) -> set[int]:
    """PIDs whose command line holds one of ``markers``, and all their descendants."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    found = {pid for pid in pids if pid != os.getpid() and any(m in _command_line(pid) for m in markers)}
    parents = {pid: _parent(pid) for pid in pids}
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        grew = bool(children)
        found |= children
    return found


def _end(pids: set[int], grace: float = 5.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class LocalRayCluster:
    def __init__(self, root: Path | None = None):
        # a short root: Ray's socket paths under it must stay within 107 bytes
        self.root = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp")) if root is None else root
        self.nodes: list[tuple[Path, list[str]]] = []  # (temp dir, markers of its processes)
        self.address: str | None = None
        self.killed: set[int] = set()  # nodes killed by kill_node

    def _start(self, name: str, head: bool) -> None:
        temp = self.root / name
        temp.mkdir(parents=True, exist_ok=True)
        ports = free_ports(9)
        command = [str(RAY), "start", "--num-cpus", "1", "--temp-dir", str(temp), "--node-ip-address", "127.0.0.1",
                   "--disable-usage-stats", "--node-manager-port", str(ports[1]),
                   "--object-manager-port", str(ports[2]), "--min-worker-port", "0", "--max-worker-port", "0",
                   "--dashboard-agent-listen-port", str(ports[3]), "--dashboard-agent-grpc-port", str(ports[4]),
                   "--runtime-env-agent-port", str(ports[5]), "--metrics-export-port", str(ports[6])]
        markers = [str(temp)]
        if head:
            command += ["--head", "--port", str(ports[0]), "--include-dashboard=false",
                        "--ray-client-server-port", str(ports[7]), "--dashboard-port", str(ports[8])]
            markers.append(f"--port={ports[7]} ")
            self.address = f"127.0.0.1:{ports[0]}"
        else:
            command += ["--address", self.address]
        self.nodes.append((temp, markers))
        environment = {**os.environ, **FAST_FAILURE_DETECTION, "RAY_USAGE_STATS_ENABLED": "0"}
        completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
        if completed.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{completed.stdout}\n{completed.stderr}")

    def start(self, workers: int = 1) -> "LocalRayCluster":
        self._start("h", head=True)
        for number in range(workers):
            self.add_worker(f"w{number}")
        return self

    def add_worker(self, name: str) -> None:
        self._start(name, head=False)
        self.wait_for_nodes(len(self.nodes) - len(self.killed))

    def alive_nodes(self) -> int:
        completed = subprocess.run(
            [sys.executable, "-c", "import ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))" % self.address],
            capture_output=True, text=True, timeout=60)
        return int(completed.stdout.strip().splitlines()[-1]) if completed.returncode == 0 else -1

    def wait_for_nodes(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.alive_nodes() != count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach {count} live nodes")
            time.sleep(0.5)

    def raylet_of(self, node: int) -> int:
        """The PID of node ``node``'s raylet (0 is the head)."""
        temp = str(self.nodes[node][0])
        pids = [pid for pid in _processes_with([temp]) if "raylet/raylet" in _command_line(pid).split(" ")[0]]
        if len(pids) != 1:
            raise RuntimeError(f"expected one raylet for {temp}, found {pids}")
        return pids[0]

    def wait_until_running(self, node: int, task: str, timeout: float = 60) -> None:
        """Return once a worker of node ``node`` runs ``task`` (its process title is 'ray::<task>')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(_command_line(pid).startswith(f"ray::{task}") for pid in _processes_with(self.nodes[node][1])):
                return
            time.sleep(0.01)
        raise RuntimeError(f"no worker of node {node} ran {task} within {timeout} s")

    def kill_node(self, node: int) -> None:
        """Kill node ``node`` as a lost machine goes: its raylet and every process it ran (its
        workers among them, found while the raylet still lives), all at once with SIGKILL."""
        raylet = self.raylet_of(node)
        doomed = _processes_with(self.nodes[node][1]) | {raylet}
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.killed.add(node)

    def stop(self) -> None:
        for temp, markers in reversed(self.nodes):
            _end(_processes_with(markers))
        self.nodes = []
        shutil.rmtree(self.root, ignore_errors=True)
