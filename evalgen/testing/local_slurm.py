"""A single-node SLURM cluster on localhost, for evalgen's tests and benchmarks (and for trying
the SLURM path of `evalgen sweep` on one machine, as root): munged, slurmctld and slurmd from
Debian's ``slurm-wlm`` and ``munge``, each with its own socket, ports, state and logs under one
folder, so nothing of the machine's own configuration (if any) is read or changed.

`start_cluster` returns a `Cluster` whose ``env`` (``SLURM_CONF``) points the client commands
(sbatch, squeue, scontrol, scancel) at it; `Cluster.stop` stops the daemons it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DAEMONS", "Cluster", "missing_daemons", "start_cluster"]

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
#: Seconds the cluster may take to show its node as idle.
START_TIMEOUT = 60.0


def missing_daemons() -> list[str]:
    """The programs the cluster needs that are not installed (daemons live in /usr/sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [name for name in DAEMONS if shutil.which(name, path=path) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """slurmd -C's node line without its UpTime, with the node reachable on localhost."""
    lines = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()
    node = next(line for line in lines if line.startswith("NodeName="))
    return f"{node} NodeAddr=127.0.0.1 State=UNKNOWN"


def _config(root: Path, host: str, node_line: str, munge_socket: Path) -> str:
    return "\n".join([
        "ClusterName=evalgen-test",
        f"SlurmctldHost={host}(127.0.0.1)",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/pgid",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        "KillWait=3",
        "MinJobAge=600",
        "InactiveLimit=0",
        node_line,
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    _daemons: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, env=self.env, check=check, timeout=60)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        """Cancel every job, wait for the queue to drain (a job's slurmstepd outlives slurmd
        otherwise), then stop the daemons."""
        if all(process.poll() is None for process in self._daemons):
            self.run("scancel", "--full", "--partition=debug", check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.run("squeue", "-h", check=False).stdout.strip():
                time.sleep(0.5)
        for process in reversed(self._daemons):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self._daemons):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_idle_node(cluster: Cluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    state = ""
    while time.monotonic() < deadline:
        result = cluster.run("sinfo", "-h", "-o", "%t", check=False)
        state = result.stdout.strip()
        if state in ("idle", "mix", "alloc"):
            return
        time.sleep(0.5)
    cluster.stop()
    raise RuntimeError(f"the test SLURM cluster did not come up (node state {state!r})\n{cluster.logs()}")


def start_cluster(root: Path) -> Cluster:
    """Start munged, slurmctld and slurmd with everything under ``root``; wait until the node
    takes jobs."""
    for folder in ("state", "spool", "munge"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    munge = root / "munge"
    os.chmod(munge, 0o700)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    munge_socket = munge / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(_config(root, socket.gethostname(), _node_line(), munge_socket))
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}
    cluster = Cluster(root, env)
    try:
        cluster._daemons.append(subprocess.Popen(
            ["munged", "-F", "-f", f"--socket={munge_socket}", f"--key-file={key}",
             f"--log-file={munge / 'munged.log'}", f"--pid-file={munge / 'munged.pid'}",
             f"--seed-file={munge / 'munged.seed'}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while not munge_socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for daemon in (["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
            cluster._daemons.append(subprocess.Popen([*daemon, "-f", str(conf)], env=env,
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_idle_node(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster
