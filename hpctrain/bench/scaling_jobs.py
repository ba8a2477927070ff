"""Running a scaling study's training jobs: one subprocess each, with a timeout.

Each job gets its own process group, so a timeout stops the launcher and every rank it
started (and nothing else). A failed point (non-zero exit, timeout, no summary, or a run that
started with the wrong number of ranks) is kept as a failed RunResult.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys

from ..errors import InputError
from ..launcher import without_launcher_reports
from .run_results import load_run


def check_out_dir(out, force) -> None:
    """Refuse to overwrite an earlier study unless --force."""
    earlier = [n for n in ("scaling.csv", "runs", "data") if os.path.exists(os.path.join(out, n))]
    if earlier and not force:
        raise InputError("already holds a scaling study (use --force to replace it)", out)


def clear_runs(out) -> None:
    for sub in ("runs", "logs"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        os.makedirs(os.path.join(out, sub))


def run_point(cmd, log_path, timeout) -> str | None:
    """Run one training job; None on success, else a one-line reason."""
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
    """The line of the log that says what went wrong (the last `error` line, else the last),
    never the launcher's own report (Open MPI's ends the log with a box of its own)."""
    with open(log_path, errors="replace") as f:
        lines = [line.strip() for line in
                 without_launcher_reports(f.read().splitlines()[1:]) if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    line = (errors or lines or ["(no output)"])[-1]
    return line[:200]


def collect(point, run_dir, error):
    """The point's RunResult; a run that ran with another rank count (or, in a layout sweep,
    another thread count) counts as failed."""
    result = load_run(run_dir, ranks=point.ranks, algorithm=point.algorithm, error=error)
    ran, ran_threads = result.summary.get("ranks"), result.threads
    if point.threads is not None:
        result.threads = point.threads
    if result.ok and ran != point.ranks:
        result.error = (f"ran as {ran} ranks, not {point.ranks} "
                        "(is the launcher's MPI the one mpi4py uses? srun needs --mpi=pmi2)")
        result.summary = {}
    elif result.ok and point.threads is not None and ran_threads != point.threads:
        result.error = f"ran with {ran_threads} threads per rank, not {point.threads}"
        result.summary = {}
    return result


def progress_bar(total, stream):
    """A bar on `stream` where it is a terminal; elsewhere (a log file, a pipe, CI) none,
    since its redraws would only be noise around the one line per run."""
    from tqdm import tqdm  # the bar's library, loaded only when a study runs

    return tqdm(total=total, desc="scaling", unit="run", file=stream, disable=None)


def run_study(planned, make_cmd, out, timeout):
    """Run every planned job, one line on stdout each; returns their RunResults in order."""
    results = []
    with progress_bar(len(planned), sys.stderr) as bar:
        for point in planned:
            bar.set_postfix_str(point.name)
            run_dir = os.path.join(out, "runs", point.name)
            log_path = os.path.join(out, "logs", point.name + ".log")
            error = run_point(make_cmd(point, run_dir), log_path, timeout)
            result = collect(point, run_dir, error)
            results.append(result)
            bar.write(describe_result(point, result, log_path), file=sys.stdout)
            bar.update()
    return results


def describe_result(point, result, log_path) -> str:
    if result.ok:
        return (f"{point.name}: {result.summary['samples_per_s']:,.0f} samples/s, "
                f"comm {result.summary.get('comm_fraction', 0):.0%}")
    return f"{point.name}: FAILED: {result.error} (log: {log_path})"
