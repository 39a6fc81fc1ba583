"""A throwaway one-node SLURM cluster on localhost, for tests (root, no systemd needed).

`LocalSlurm` installs the Debian packages if they are missing, writes
/etc/slurm/slurm.conf and gres.conf (backing up and later restoring whatever was there),
makes fake GPUs (character devices), starts munged, slurmctld and slurmd in the foreground
as child processes and stops exactly those processes, by PID, on exit.

Why the config lives in /etc/slurm: the SLURM executor's job step unsets every SLURM_*
variable before its inner srun, so a SLURM_CONF pointing elsewhere breaks every job.

Crash safety: the daemons' PIDs and the backup live in a fixed folder (STATE_DIR) under a
lock file, so a later run that finds a crashed run's state stops those daemons (after
checking /proc that they are ours) and restores /etc/slurm before doing anything else.

As a script, for manual experiments: `python tests/slurm/local_slurm.py up` (prints the
partitions; leaves the cluster running) and `python tests/slurm/local_slurm.py down`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "munged"]
SLURM_ETC = Path("/etc/slurm")
MANAGED_FILES = ["slurm.conf", "gres.conf"]
STATE_DIR = Path("/tmp/fgbg-slurm")  # short: munge's socket path must stay < 108 bytes
LOCK_FILE = Path("/tmp/fgbg-slurm.lock")
MARKER = "# written by fgbg tests/slurm/local_slurm.py"
PORTS = (6817, 6818)  # slurmctld, slurmd
N_FAKE_GPUS = 2


class ClusterUnavailable(Exception):
    """This machine cannot host the test cluster (not root, no apt, SLURM already running)."""


def _daemon_names() -> set[str]:
    return {"munged", "slurmctld", "slurmd"}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running_daemons() -> dict[int, str]:
    """PID -> command name of every munged/slurmctld/slurmd process on this machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in _daemon_names():
                found[int(entry.name)] = comm
    return found


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def ensure_packages(log=print) -> None:
    """Install the SLURM and munge packages with apt when a binary is missing."""
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable(f"not root: cannot install {' '.join(PACKAGES)}")
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable(f"apt-get not found: cannot install {' '.join(PACKAGES)}")
    log(f"installing {' '.join(PACKAGES)} (missing: {' '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Keep the packages' maintainer scripts from starting daemons we did not ask for.
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise ClusterUnavailable(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    finally:
        if made_policy:
            policy.unlink()


def slurm_conf(
    state: Path, partitions: dict[str, bool], cpus: int, min_job_age: int, gpu_files: str
) -> str:
    """slurm.conf for one node `localhost`; `partitions` maps name -> is the default."""
    lines = [
        MARKER,
        "ClusterName=fgbgtest",
        "SlurmctldHost=localhost",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={state}/munge.socket",
        f"SlurmctldPort={PORTS[0]}",
        f"SlurmdPort={PORTS[1]}",
        f"StateSaveLocation={state}/ctld",
        f"SlurmdSpoolDir={state}/spool",
        f"SlurmctldPidFile={state}/slurmctld.pid",
        f"SlurmdPidFile={state}/slurmd.pid",
        f"SlurmctldLogFile={state}/slurmctld.log",
        f"SlurmdLogFile={state}/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/affinity",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "MailProg=/bin/true",
        "ReturnToService=2",
        # The executor polls with squeue: finished jobs must stay visible long enough
        # (the plugin falls back to sacct, which needs slurmdbd, below 3 x its first delay).
        f"MinJobAge={min_job_age}",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "JobAcctGatherType=jobacct_gather/none",
        "SchedulerType=sched/builtin",
        "GresTypes=gpu",
        # The node accepts requests larger than this machine (memory, CPUs) so that the
        # project profile's resource values can be used unchanged.
        "SlurmdParameters=config_overrides",
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000000 "
        f"Gres=gpu:fake:{N_FAKE_GPUS} State=UNKNOWN",
    ]
    for name, default in partitions.items():
        lines.append(
            f"PartitionName={name} Nodes=localhost Default={'YES' if default else 'NO'} "
            "MaxTime=INFINITE State=UP"
        )
    return "\n".join(lines) + "\n"


def gres_conf(gpu_files: str) -> str:
    return f"{MARKER}\nAutoDetect=off\nNodeName=localhost Name=gpu Type=fake File={gpu_files}\n"


class LocalSlurm:
    """Context manager: a running one-node cluster with the given partitions."""

    def __init__(self, partitions: list[str], cpus: int = 16, min_job_age: int = 300, log=print):
        if not partitions:
            raise ValueError("need at least one partition")
        self.partitions = {name: i == 0 for i, name in enumerate(dict.fromkeys(partitions))}
        self.cpus = cpus
        self.min_job_age = min_job_age
        self.log = log
        self.state = STATE_DIR
        self._lock = None
        self._procs: dict[str, subprocess.Popen] = {}

    # -- public -----------------------------------------------------------------------

    def __enter__(self) -> LocalSlurm:
        if os.geteuid() != 0:
            raise ClusterUnavailable("not root: the test cluster writes /etc/slurm")
        ensure_packages(self.log)
        self._acquire_lock()
        try:
            cleanup_stale(self.log)
            foreign = _running_daemons()
            if foreign:
                raise ClusterUnavailable(
                    f"SLURM/munge daemons not started by this test are running: {foreign}"
                )
            busy = [p for p in PORTS if _port_in_use(p)]
            if busy:
                raise ClusterUnavailable(f"ports {busy} are in use")
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def logs(self, tail: int = 30) -> str:
        """The last lines of every daemon log (for failure messages)."""
        out = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.state / name
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel our jobs, stop our daemons by PID, restore /etc/slurm, release the lock."""
        try:
            if self._procs.get("slurmctld") and self._procs["slurmctld"].poll() is None:
                _cancel_all_jobs()
            for name in ("slurmd", "slurmctld", "munged"):
                proc = self._procs.pop(name, None)
                if proc is not None:
                    _stop_pid(proc.pid, proc)
            _restore_etc(self.state)
            if self.state.exists():
                shutil.rmtree(self.state, ignore_errors=True)
        finally:
            self._release_lock()

    # -- internals ----------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        self._lock = open(LOCK_FILE, "w")  # noqa: SIM115 - held until stop()
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ClusterUnavailable(f"{LOCK_FILE} held by another test run") from None
                time.sleep(1)

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _save_state(self) -> None:
        pids = {name: proc.pid for name, proc in self._procs.items()}
        (self.state / "state.json").write_text(json.dumps({"pids": pids}))

    def _start(self) -> None:
        state = self.state
        state.mkdir(mode=0o700)
        for sub in ("ctld", "spool", "backup"):
            (state / sub).mkdir()
        _backup_etc(state)
        (state / "state.json").write_text(json.dumps({"pids": {}}))

        gpus = []
        for i in range(N_FAKE_GPUS):
            dev = state / f"fakegpu{i}"
            try:  # a character device, the same as /dev/null
                os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            except PermissionError as error:
                raise ClusterUnavailable(f"cannot make fake GPU devices: {error}") from None
            gpus.append(dev)
        gpu_files = f"{state}/fakegpu[0-{N_FAKE_GPUS - 1}]"

        SLURM_ETC.mkdir(exist_ok=True)
        (SLURM_ETC / "slurm.conf").write_text(
            slurm_conf(state, self.partitions, self.cpus, self.min_job_age, gpu_files)
        )
        (SLURM_ETC / "gres.conf").write_text(gres_conf(gpu_files))

        key = state / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={state}/munge.socket",
                f"--key-file={key}",
                f"--pid-file={state}/munged.pid",
                f"--seed-file={state}/munged.seed",
                f"--log-file={state}/munged.log",
            ],
        )
        _wait_for(lambda: (state / "munge.socket").exists(), 10, "munged socket", self)
        conf = str(SLURM_ETC / "slurm.conf")
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", conf])
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", conf])
        _wait_for(self._node_idle, 30, "node localhost idle", self)
        self.log(f"SLURM up: partitions {list(self.partitions)}, {N_FAKE_GPUS} fake GPUs")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.state / f"{name}.out", "w")  # noqa: SIM115 - child keeps it
        self._procs[name] = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        self._save_state()

    def _node_idle(self) -> bool:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                out = (self.state / f"{name}.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{out}\n{self.logs()}")
        done = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
        # one line per partition the node is in
        return done.returncode == 0 and set(done.stdout.split()) == {"idle"}


def _wait_for(check, timeout: float, what: str, cluster: LocalSlurm) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}\n{cluster.logs()}")


def _cancel_all_jobs() -> None:
    """Cancel every job of the test cluster and give slurmd a few seconds to clean up."""
    try:
        jobs = subprocess.run(
            ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=10
        ).stdout.split()
        if jobs:
            subprocess.run(["scancel", *jobs], capture_output=True, timeout=10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                states = subprocess.run(
                    ["squeue", "-h", "-t", "PD,R,CG", "-o", "%i"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout.split()
                if not states:
                    break
                time.sleep(0.5)
    except (OSError, subprocess.SubprocessError):
        pass


def _stop_pid(pid: int, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM, wait up to 10 s, then SIGKILL; `proc` (our child) is reaped."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait(timeout=10)


def _backup_etc(state: Path) -> None:
    """Record which managed files existed in /etc/slurm and copy them."""
    existed = {}
    for name in MANAGED_FILES:
        path = SLURM_ETC / name
        existed[name] = path.exists()
        if existed[name]:
            shutil.copy2(path, state / "backup" / name)
    record = {"etc_existed": SLURM_ETC.exists(), "files": existed}
    (state / "backup" / "record.json").write_text(json.dumps(record))


def _restore_etc(state: Path) -> None:
    record_path = state / "backup" / "record.json"
    if not record_path.exists():
        return
    record = json.loads(record_path.read_text())
    for name, existed in record["files"].items():
        target = SLURM_ETC / name
        if existed:
            shutil.copy2(state / "backup" / name, target)
        elif target.exists():
            target.unlink()
    if not record["etc_existed"] and SLURM_ETC.exists() and not any(SLURM_ETC.iterdir()):
        SLURM_ETC.rmdir()
    record_path.unlink()


def cleanup_stale(log=print) -> None:
    """Undo a crashed run: stop its daemons (if still ours) and restore /etc/slurm."""
    state_file = STATE_DIR / "state.json"
    if not STATE_DIR.exists():
        return
    if state_file.exists():
        pids = json.loads(state_file.read_text()).get("pids", {})
        if "slurmctld" in pids and "slurmctld" in _cmdline(pids["slurmctld"]):
            _cancel_all_jobs()
        for name, pid in pids.items():
            cmdline = _cmdline(pid)
            if name in cmdline and (str(STATE_DIR) in cmdline or str(SLURM_ETC) in cmdline):
                log(f"stopping {name} (pid {pid}) left by an earlier run")
                _stop_pid(pid)
    _restore_etc(STATE_DIR)
    shutil.rmtree(STATE_DIR, ignore_errors=True)


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in {"up", "down"}:
        print(__doc__)
        return 2
    if argv[1] == "down":
        fd = open(LOCK_FILE, "w")  # noqa: SIM115
        fcntl.flock(fd, fcntl.LOCK_EX)
        cleanup_stale()
        return 0
    cluster = LocalSlurm(argv[2:] or ["cpu", "gpu"])
    cluster.__enter__()
    # Leave it running: forget the children and the lock; `down` stops them by PID.
    cluster._procs.clear()
    cluster._release_lock()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
