"""`hpctrain bench scaling`: a strong or weak scaling study, one short training job per point.

A point is (rank count, allreduce algorithm, repeat). The harness makes one synthetic dataset
sized for the mode (../shared/WORKLOADS.md), then starts `hpctrain train` under the launcher
(`mpiexec -n P` or `srun -n P`) once per point, each with a timeout, and collects the run's
summary.json. Results go through hpctrain.bench.report: scaling.csv, scaling.md, scaling.png.

strong: the global batch is fixed, so every rank gets global/P samples per step;
weak:   the local batch is fixed, so the global batch grows as P times it.

A failed point (non-zero exit, timeout, no summary, or a run that started with the wrong
number of ranks) is kept as a FAILED row and makes the exit status 1 at the end.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass

import click

from ..errors import EXIT_FAILED, InputError
from .report import MODES


@dataclass(frozen=True)
class Workload:
    features: int
    hidden: str  # comma-separated hidden sizes, as `hpctrain train --hidden`
    classes: int  # 2: binary (one sigmoid output); C > 2: softmax
    local_batch: int  # weak scaling: per rank
    global_batch: int  # strong scaling: over all ranks


# WORKLOADS.md. W1 names no strong-scaling batch: 4096 is its local batch at 16 ranks.
WORKLOADS = {
    "W1": Workload(features=32, hidden="64", classes=2, local_batch=256, global_batch=4096),
    "W2": Workload(features=1024, hidden="1024,1024", classes=10, local_batch=512,
                   global_batch=8192),
}
# Dataset rows = this many global batches at the largest rank count: several steps per
# epoch, without one rank count reading much more than it trains on.
BATCHES_IN_DATASET = 4


@dataclass(frozen=True)
class PlannedRun:
    """One training job of the study: one repeat of one (ranks, algorithm) point."""

    ranks: int
    algorithm: str
    repeat: int

    @property
    def name(self) -> str:
        return f"p{self.ranks}-{self.algorithm}-r{self.repeat}"


def parse_ranks(text: str) -> list:
    try:
        ranks = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--ranks must be comma-separated integers, got {text!r}") from None
    if not ranks or any(r < 1 for r in ranks):
        raise InputError(f"--ranks must be positive rank counts, got {text!r}")
    return sorted(set(ranks))


def parse_names(text: str, flag: str) -> list:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise InputError(f"{flag} needs at least one name")
    return list(dict.fromkeys(names))


def resolve_workload(name, features, hidden, classes, batch_size, global_batch) -> Workload:
    """The named workload (default W1) with any custom flags given on top of it."""
    if name not in WORKLOADS:
        raise InputError(f"--workload must be one of {', '.join(WORKLOADS)}, got {name!r}")
    base = WORKLOADS[name]
    return Workload(features=features or base.features, hidden=hidden or base.hidden,
                    classes=base.classes if classes is None else classes,
                    local_batch=batch_size or base.local_batch,
                    global_batch=global_batch or base.global_batch)


def dataset_rows(mode: str, work: Workload, max_ranks: int) -> int:
    batch = work.global_batch if mode == "strong" else work.local_batch * max_ranks
    return BATCHES_IN_DATASET * batch


def batch_args(mode: str, work: Workload) -> list:
    if mode == "strong":
        return ["--global-batch", str(work.global_batch)]
    return ["--batch-size", str(work.local_batch)]


def launch_prefix(launcher: str, ranks: int, extra: list) -> list:
    """The launcher part of a point's command line; extra args go before the rank count."""
    if launcher == "srun":
        # The plugin that pip's MPICH (and most MPIs) accept, overridable like train.sbatch's.
        mpi = os.environ.get("HPCTRAIN_SRUN_MPI", "pmi2")
        return ["srun", f"--mpi={mpi}", *extra, "--ntasks", str(ranks)]
    return [default_mpiexec(), *extra, "-n", str(ranks)]


def default_mpiexec() -> str:
    """$HPCTRAIN_MPIEXEC, else the mpiexec beside this Python (a venv's pip MPICH, the MPI
    its mpi4py was built with), else the one on PATH."""
    if os.environ.get("HPCTRAIN_MPIEXEC"):
        return os.environ["HPCTRAIN_MPIEXEC"]
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else "mpiexec"


def train_command(point, launcher, launcher_args, data, run_dir, mode, work, steps,
                  train_args) -> list:
    return [*launch_prefix(launcher, point.ranks, launcher_args),
            sys.executable, "-m", "hpctrain", "train", "--data", data, "--out", run_dir,
            "--hidden", work.hidden, *batch_args(mode, work), "--steps", str(steps),
            "--allreduce", point.algorithm, "--log-every", str(steps), "--force", *train_args]


# ---------------------------------------------------------------- running one point

def run_point(cmd, log_path, timeout) -> str | None:
    """Run one training job; None on success, else a one-line reason.

    The job gets its own process group, so a timeout stops the launcher and every rank it
    started (and nothing else).
    """
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            return f"timed out after {timeout:g} s"
        except BaseException:
            stop_group(proc)
            raise
    if code != 0:
        return f"exit {code}: {last_error_line(log_path)}"
    return None


def stop_group(proc, grace=5.0) -> None:
    """SIGTERM the job's process group (the one it was started in), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def last_error_line(log_path) -> str:
    """The line of the log that says what went wrong (the last `error` line, else the last)."""
    with open(log_path, errors="replace") as f:
        lines = [line.strip() for line in f.read().splitlines()[1:] if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    line = (errors or lines or ["(no output)"])[-1]
    return line[:200]


def collect(point, run_dir, error):
    """The point's RunResult; a run that ran with another rank count counts as failed."""
    from .report import load_run

    result = load_run(run_dir, ranks=point.ranks, algorithm=point.algorithm, error=error)
    ran = result.summary.get("ranks")
    if result.ok and ran != point.ranks:
        result.error = (f"ran as {ran} ranks, not {point.ranks} "
                        "(is the launcher's MPI the one mpi4py uses? srun needs --mpi=pmi2)")
        result.summary = {}
    return result


# ---------------------------------------------------------------- the study

def check_out_dir(out, force) -> None:
    """Refuse to overwrite an earlier study unless --force."""
    earlier = [n for n in ("scaling.csv", "runs", "data") if os.path.exists(os.path.join(out, n))]
    if earlier and not force:
        raise InputError("already holds a scaling study (use --force to replace it)", out)


def clear_runs(out) -> None:
    for sub in ("runs", "logs"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        os.makedirs(os.path.join(out, sub))


def make_data(out, mode, work, ranks, samples, echo) -> str:
    from ..data.synth import make_synthetic

    data = os.path.join(out, "data")
    rows = samples or dataset_rows(mode, work, max(ranks))
    echo(f"synthetic data: {rows} rows x {work.features} features, {work.classes} classes, "
         f"{max(ranks)} shards -> {data}")
    # force: check_out_dir already refused an earlier study's data unless --force was given
    make_synthetic(data, samples=rows, features=work.features, classes=work.classes,
                   shards=max(ranks), seed=0, force=True)
    return data


def run_study(planned, make_cmd, out, timeout):
    """Run every planned job with a progress bar; returns their RunResults in order."""
    from tqdm import tqdm

    results = []
    with tqdm(total=len(planned), desc="scaling", unit="run", file=sys.stderr) as bar:
        for point in planned:
            bar.set_postfix_str(point.name)
            run_dir = os.path.join(out, "runs", point.name)
            log_path = os.path.join(out, "logs", point.name + ".log")
            error = run_point(make_cmd(point, run_dir), log_path, timeout)
            result = collect(point, run_dir, error)
            results.append(result)
            bar.write(describe_result(point, result, log_path))
            bar.update()
    return results


def describe_result(point, result, log_path) -> str:
    if result.ok:
        return (f"{point.name}: {result.summary['samples_per_s']:,.0f} samples/s, "
                f"comm {result.summary.get('comm_fraction', 0):.0%}")
    return f"{point.name}: FAILED: {result.error} (log: {log_path})"


@click.command("scaling")
@click.option("--mode", type=click.Choice(MODES), required=True,
              help="strong: fixed global batch; weak: fixed local batch per rank.")
@click.option("--ranks", default="1,2,4,8,16", show_default=True,
              help="Comma-separated rank counts.")
@click.option("--workload", default="W1", show_default=True,
              help="W1 or W2 (WORKLOADS.md); the flags below override its values.")
@click.option("--features", type=int, help="Input features of the synthetic data.")
@click.option("--hidden", help="Hidden layer sizes, comma-separated (e.g. 1024,1024).")
@click.option("--classes", type=int, help="2 (binary) or C > 2 (softmax).")
@click.option("--batch-size", type=int, help="Local batch per rank (weak scaling).")
@click.option("--global-batch", type=int, help="Global batch (strong scaling).")
@click.option("--samples", type=int, help="Dataset rows (default: 4 global batches at the "
              "largest rank count).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="Use this dataset instead of making a synthetic one.")
@click.option("--allreduce", default="ring", show_default=True,
              help="Allreduce algorithms, comma-separated: measured side by side.")
@click.option("--steps", default=30, show_default=True, type=int,
              help="Training steps per run (the first is warm-up, left out of the timings).")
@click.option("--repeats", default=3, show_default=True, type=int,
              help="Runs per point; the table shows their median.")
@click.option("--launcher", type=click.Choice(("mpiexec", "srun")), default="mpiexec",
              show_default=True)
@click.option("--mpiexec-args", default="",
              help='Extra launcher arguments, e.g. "--bind-to core" (Open MPI).')
@click.option("--train-args", default="", help='Extra `hpctrain train` arguments for every '
              'run, e.g. "--device cuda".')
@click.option("--timeout", default=600.0, show_default=True, type=float,
              help="Seconds one run may take before it counts as failed.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Output directory (default: scaling-MODE).")
@click.option("--force", is_flag=True, help="Replace an earlier study in --out.")
def scaling(mode, ranks, workload, features, hidden, classes, batch_size, global_batch,
            samples, data_dir, allreduce, steps, repeats, launcher, mpiexec_args, train_args,
            timeout, out, force):
    """Strong or weak scaling: one short training run per rank count and algorithm.

    Writes OUT/scaling.csv, OUT/scaling.md and OUT/scaling.png, plus each run's directory
    under OUT/runs and its output under OUT/logs. Exit status 1 if any run failed.
    """
    from .report import markdown_table, write_outputs

    rank_counts = parse_ranks(ranks)
    algorithms = parse_names(allreduce, "--allreduce")
    work = resolve_workload(workload.upper(), features, hidden, classes, batch_size,
                            global_batch)
    for name, value in (("--repeats", repeats), ("--timeout", timeout)):
        if value <= 0:
            raise InputError(f"{name} must be positive, got {value:g}")
    if steps < 2:
        raise InputError(f"--steps must be at least 2 (the first is warm-up), got {steps}")
    if shutil.which(launch_prefix(launcher, 1, [])[0]) is None:
        raise InputError(f"launcher {launch_prefix(launcher, 1, [])[0]!r} not found on PATH")
    if data_dir is not None and not os.path.isdir(data_dir):
        raise InputError("no such dataset directory", data_dir)
    out = out or f"scaling-{mode}"
    check_out_dir(out, force)
    data = data_dir or make_data(out, mode, work, rank_counts, samples, click.echo)
    clear_runs(out)

    # Repeats outermost: a drift in the machine's speed spreads over all points alike.
    planned = [PlannedRun(p, alg, r) for r in range(repeats) for p in rank_counts
               for alg in algorithms]

    def make_cmd(point, run_dir):
        return train_command(point, launcher, shlex.split(mpiexec_args), data, run_dir, mode,
                             work, steps, shlex.split(train_args))

    results = run_study(planned, make_cmd, out, timeout)
    command = "hpctrain " + shlex.join(sys.argv[1:])
    table_points, mode, written = write_outputs(results, out, mode, command, click.echo)
    click.echo(markdown_table(table_points, mode), nl=False)
    click.echo(f"wrote {', '.join(os.path.join(out, name) for name in written)}")
    failed = [r for r in results if not r.ok]
    if failed:
        click.echo(f"{len(failed)} of {len(results)} runs FAILED (see the status column)",
                   err=True)
        raise SystemExit(EXIT_FAILED)
