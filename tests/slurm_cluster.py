"""A real one-node SLURM (slurmctld + slurmd) in a scratch directory, for tests.

The recipe: Debian's SLURM 22.05 with AuthType=auth/none and CredType=cred/none (no munge),
process tracking without cgroups (no systemd needed), MpiDefault=pmi2 (with `none`, plain
`srun python` silently starts size-1 programs), MinJobAge=4 (so finished jobs leave the queue
quickly), a random FirstJobId (first_job_id says why), and every state, spool, pid and log
path under the scratch directory, on ports
picked free, so that two test sessions on one machine never meet. Clients find this cluster
through SLURM_CONF, which `env()` sets; jobs inherit it from sbatch's default `--export=ALL`.

    cluster = SlurmCluster(tmp_dir)
    reason = cluster.start()       # None when running, else why not (the tests skip with it)
    job = cluster.sbatch(["--ntasks", "2", "slurm/train.sbatch"], env=...)
    cluster.wait([job], timeout=60)
    cluster.stop()                 # by the PIDs in the daemons' pid files, never by name
"""

import getpass
import os
import random
import shutil
import signal
import socket
import subprocess
import time

DAEMONS = ("slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "srun", "scontrol")
SETUP_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            ".ci", "slurm-setup.sh")

_CONF = """\
# One-node test cluster written by tests/slurm_cluster.py (its docstring explains the settings).
ClusterName=hpctrain-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/none
# A requeued job waits cred_expire before it starts again (default 120 s): long enough that
# slurmd no longer refuses it for the first start's revoked credential ("Job credential
# revoked", when both fall in the same second) and the first start's step daemons are gone.
AuthInfo=cred_expire=5
CredType=cred/none
MpiDefault=pmi2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=4
FirstJobId={first_job_id}
MailProg=/bin/true
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES OverSubscribe=YES MaxTime=INFINITE State=UP
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def first_job_id() -> int:
    """Job ids unique across test sessions, as on a real cluster. MPICH names its shared
    memory after the PMI job name, which under srun is JOBID.STEP: a fresh cluster starting
    at job 1 again meets the segment a killed rank of an earlier session's job 1 left in
    /dev/shm, and MPI_Init fails ("invalid bandwidth", "message truncated")."""
    return random.randrange(10_000, 60_000_000)  # SLURM's MaxJobId is 67,043,328


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS + CLIENTS if shutil.which(name) is None]


def install_if_possible() -> str | None:
    """Run .ci/slurm-setup.sh when SLURM is missing; None when the binaries are there after."""
    if not missing_binaries():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "SLURM is not installed and cannot be (needs root and apt-get)"
    proc = subprocess.run(["sh", SETUP_SCRIPT], capture_output=True, text=True, timeout=600)
    missing = missing_binaries()
    if missing:
        note = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        return f"SLURM install failed ({', '.join(missing)} missing): {note[0]}"
    return None


def _alive(pid) -> bool:
    """True while pid runs; a zombie (exited, not yet reaped by a container's init) is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class SlurmCluster:
    """slurmctld + slurmd on this host, configured and logging under `root`."""

    def __init__(self, root):
        self.root = os.path.abspath(str(root))
        self.conf = os.path.join(self.root, "slurm.conf")
        self.host = socket.gethostname().split(".")[0]
        self.started = []

    def env(self, base=None) -> dict:
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = self.conf
        return env

    def start(self, timeout=30) -> str | None:
        """Start both daemons and wait for the node to be idle; None, or why it failed."""
        reason = install_if_possible()
        if reason:
            return reason
        self._write_conf()
        for daemon in DAEMONS:
            args = [daemon, "-f", self.conf]
            if daemon == "slurmd":
                args += ["-N", self.host]
            proc = subprocess.run(args, capture_output=True, text=True, env=self.env(),
                                  timeout=timeout)
            if proc.returncode != 0:
                self.stop()
                return f"{daemon} did not start: {self._last_log_line(daemon, proc)}"
            self.started.append(daemon)
        if not self._wait_idle(timeout):
            self.stop()
            return f"node {self.host} not idle after {timeout} s: {self._last_log_line('slurmd')}"
        return None

    def _write_conf(self):
        for sub in ("state", "spool"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        with open(self.conf, "w") as out:
            out.write(_CONF.format(host=self.host, root=self.root, user=getpass.getuser(),
                                   cpus=os.cpu_count() or 1, ctld_port=free_port(),
                                   slurmd_port=free_port(), first_job_id=first_job_id()))

    @staticmethod
    def step_daemons(job_id) -> list[str]:
        """The job's slurmstepd processes still alive on this (the only) node, by their
        titles, "slurmstepd: [JOBID.STEP]"; SLURM reports a node idle before they exit."""
        proc = subprocess.run(["pgrep", "-a", "-f", rf"slurmstepd: \[{job_id}\."],
                              capture_output=True, text=True, timeout=10)
        return proc.stdout.splitlines()

    def _wait_idle(self, timeout) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
            if proc.returncode == 0 and proc.stdout.strip().startswith("idle"):
                return True
            time.sleep(0.5)
        return False

    def _last_log_line(self, daemon, proc=None) -> str:
        text = ""
        if proc is not None:
            text = (proc.stderr or proc.stdout).strip()
        log = os.path.join(self.root, f"{daemon}.log")
        if not text and os.path.exists(log):
            with open(log) as f:
                text = f.read().strip()
        lines = [line for line in text.splitlines() if "error" in line.lower()] or \
            text.splitlines()
        return lines[-1] if lines else "(no output)"

    def run(self, args, env=None, check=True, timeout=30) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              env=self.env(env))
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr}")
        return proc

    def sbatch(self, args, env=None, cwd=None) -> str:
        """Submit with `sbatch --parsable ARGS`; returns the job id."""
        proc = subprocess.run(["sbatch", "--parsable", *map(str, args)], capture_output=True,
                              text=True, timeout=30, env=self.env(env), cwd=cwd)
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(map(str, args))}: {proc.stderr.strip()}")
        return proc.stdout.strip().split(";")[0]

    def active(self, job_ids) -> list[str]:
        """Those of job_ids (array jobs included) that are still pending or running."""
        proc = self.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(job_ids)],
                        check=False)
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:  # (= long gone)
            # squeue times out when slurmctld is busy (a loaded CI machine): that says nothing
            # about the jobs, and taking its empty output for "none left" ended a wait early
            return [f"unknown (squeue failed: {proc.stderr.strip()[:200]})"]
        return [line for line in proc.stdout.splitlines() if line.strip()]

    def wait(self, job_ids, timeout=60, poll=0.5) -> None:
        """Loop on squeue until the jobs have left the queue (sbatch --wait reacts late)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.active(job_ids):
                return
            time.sleep(poll)
        raise TimeoutError(f"jobs still queued after {timeout} s: {self.active(job_ids)}")

    def job_state(self, job_id) -> str:
        """`scontrol show job` while SLURM still remembers it (MinJobAge), else ''."""
        proc = self.run(["scontrol", "show", "job", str(job_id)], check=False)
        for field in proc.stdout.split():
            if field.startswith("JobState="):
                return field.split("=", 1)[1]
        return ""

    def stop(self) -> None:
        """SIGTERM each daemon we started, by the PID in its pid file, and wait for it."""
        for daemon in reversed(self.started):
            pid = self._pid(daemon)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            self._wait_gone(pid)
        self.started = []

    def _pid(self, daemon) -> int | None:
        try:
            with open(os.path.join(self.root, f"{daemon}.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _wait_gone(pid, timeout=10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
