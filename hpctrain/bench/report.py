"""Scaling results from run directories: one row per (ranks, algorithm), as CSV, markdown, PNG.

Used by `hpctrain bench scaling` (after it ran the points) and `hpctrain bench report RUN...`
(on run directories from anywhere, e.g. SLURM jobs). Repeats of one point are reduced to
their median. Speedup is throughput(p) / throughput(1), which is T(1)/T(p) for strong scaling
(fixed global batch) and the scaled speedup for weak scaling (fixed local batch); in both
modes efficiency = speedup / p, and the ideal is speedup = p, efficiency = 1.
throughput(1) is the median of ALL the one-rank runs, whatever their algorithm: one rank
does not communicate, so they ran the same program, and sharing the reference lets the
algorithms' curves be compared point by point. Without one-rank runs, each algorithm is
measured against its own smallest rank count p0: speedup = p0 * throughput(p) / throughput(p0).

A run that failed is kept as a row whose status says why, never dropped.
"""

import csv
import json
import math
import os
import statistics
from dataclasses import dataclass, field

import click

from ..errors import EXIT_FAILED, InputError

PHASES = ("data", "compute", "allreduce", "update")
MODES = ("strong", "weak")


@dataclass
class RunResult:
    """One training run (one repeat of one point); `error` set when it produced no result."""

    path: str
    ranks: int | None
    algorithm: str | None
    summary: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Point:
    """The median over the repeats of one (ranks, algorithm) pair, and how it compares."""

    ranks: int | None
    algorithm: str
    repeats: int
    failed: int
    errors: list
    rates: list = field(default_factory=list)  # samples/s of each successful repeat
    samples_per_s: float | None = None
    samples_per_s_min: float | None = None
    samples_per_s_max: float | None = None
    step_time_s: float | None = None
    comm_fraction: float | None = None
    phases: dict = field(default_factory=dict)
    global_batch: int | None = None
    local_batch: int | None = None
    device: str | None = None
    speedup: float | None = None
    efficiency: float | None = None

    @property
    def status(self) -> str:
        if not self.failed:
            return "ok"
        first = self.errors[0] if self.errors else "failed"
        if self.failed == self.repeats:
            return f"FAILED: {first}"
        return f"{self.failed}/{self.repeats} repeats FAILED: {first}"


# ---------------------------------------------------------------- reading run directories

def load_run(path, ranks=None, algorithm=None, error=None) -> RunResult:
    """Read RUN/summary.json; a missing or unreadable summary becomes a failed result.

    `ranks`/`algorithm` name the point when the run left no summary (the harness knows them);
    otherwise they are taken from config.json where it exists.
    """
    path = str(path)
    summary_path = os.path.join(path, "summary.json")
    summary, problem = {}, error
    try:
        with open(summary_path) as f:
            summary = json.load(f)
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        problem = problem or "no summary.json (the run did not finish)"
    except (OSError, ValueError) as err:
        problem = problem or f"{summary_path}: unreadable: {err}"
        summary = {}
    if not problem:
        problem = missing_keys(summary, summary_path)
    if algorithm is None:
        algorithm = summary.get("algorithm") or _config_value(path, "allreduce")
    if ranks is None:
        ranks = summary.get("ranks")
    return RunResult(path, ranks, algorithm, summary if not problem else {}, problem)


def missing_keys(summary: dict, where: str) -> str | None:
    """Why a summary cannot be a point of the table, or None."""
    needed = ("ranks", "algorithm", "samples_per_s")
    absent = [k for k in needed if summary.get(k) is None]
    if absent:
        return f"{where}: missing {', '.join(absent)}"
    rate = summary["samples_per_s"]
    if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        return f"{where}: no measured throughput (samples_per_s {rate}; too few steps?)"
    return None


def _config_value(path, key):
    try:
        with open(os.path.join(path, "config.json")) as f:
            return json.load(f).get(key)
    except (OSError, ValueError, AttributeError):
        return None


# ---------------------------------------------------------------- reducing to points

def aggregate(runs: list) -> list:
    """One Point per (ranks, algorithm), sorted by algorithm then ranks, with speedups."""
    groups: dict = {}
    for run in runs:
        key = (run.ranks, run.algorithm or "?")
        groups.setdefault(key, []).append(run)
    points = [reduce_repeats(ranks, alg, group) for (ranks, alg), group in groups.items()]
    # By rank count, the algorithms side by side in the order they were first seen.
    order = {alg: i for i, alg in enumerate(dict.fromkeys(alg for _, alg in groups))}
    points.sort(key=lambda p: (p.ranks if p.ranks is not None else 1 << 30,
                               order[p.algorithm]))
    add_speedups(points)
    return points


def reduce_repeats(ranks, algorithm, runs) -> Point:
    good = [r.summary for r in runs if r.ok]
    point = Point(ranks, algorithm, repeats=len(runs), failed=len(runs) - len(good),
                  errors=[r.error for r in runs if not r.ok])
    if not good:
        return point
    rates = [float(s["samples_per_s"]) for s in good]
    point.rates = rates
    point.samples_per_s = statistics.median(rates)
    point.samples_per_s_min, point.samples_per_s_max = min(rates), max(rates)
    point.step_time_s = _median(good, "step_time_s")
    point.comm_fraction = _median(good, "comm_fraction")
    point.phases = {ph: _median([s.get("phase_times_s") or {} for s in good], ph)
                    for ph in PHASES}
    point.global_batch = good[0].get("global_batch")
    point.local_batch = good[0].get("local_batch")
    point.device = good[0].get("device")
    return point


def _median(dicts, key):
    values = [float(d[key]) for d in dicts if d.get(key) is not None]
    return statistics.median(values) if values else None


def add_speedups(points) -> None:
    """speedup = thr(p) / thr(1), thr(1) pooled over the algorithms (see the module notes);
    without one-rank runs, p0 * thr(p) / thr(p0) per algorithm."""
    good = [p for p in points if p.samples_per_s and p.ranks]
    one_rank = [rate for p in good if p.ranks == 1 for rate in p.rates]
    shared = statistics.median(one_rank) if one_rank else None
    by_alg: dict = {}
    for p in good:
        by_alg.setdefault(p.algorithm, []).append(p)
    for group in by_alg.values():
        base = min(group, key=lambda p: p.ranks)
        base_ranks, base_rate = (1, shared) if shared else (base.ranks, base.samples_per_s)
        for p in group:
            p.speedup = base_ranks * p.samples_per_s / base_rate
            p.efficiency = p.speedup / p.ranks


def infer_mode(points) -> str:
    """weak when only the local batch is the same at every rank count, else strong.

    (When neither is fixed, `batch_warning` says so under the table.)
    """
    good = [p for p in points if p.samples_per_s]
    fixed_global = len({p.global_batch for p in good}) <= 1
    fixed_local = len({p.local_batch for p in good}) <= 1
    return "weak" if fixed_local and not fixed_global else "strong"


def batch_warning(points, mode) -> str | None:
    """A note when the runs do not hold fixed what the mode says they should."""
    good = [p for p in points if p.samples_per_s]
    key = "global_batch" if mode == "strong" else "local_batch"
    values = sorted({getattr(p, key) for p in good}, key=str)
    if len(values) > 1:
        return (f"note: {mode} scaling keeps the {key.replace('_', ' ')} fixed, "
                f"but these runs have {', '.join(map(str, values))}")
    return None


# ---------------------------------------------------------------- writing

CSV_FIELDS = ("mode", "ranks", "algorithm", "device", "repeats", "failed", "samples_per_s",
              "samples_per_s_min", "samples_per_s_max", "speedup", "efficiency",
              "comm_fraction", "step_time_s", "data_s", "compute_s", "allreduce_s", "update_s",
              "global_batch", "local_batch", "status")


def csv_row(point: Point, mode: str) -> dict:
    row = {name: getattr(point, name, None) for name in CSV_FIELDS}
    row["mode"], row["status"] = mode, point.status
    for ph in PHASES:
        row[f"{ph}_s"] = point.phases.get(ph)
    return {k: ("" if v is None else v) for k, v in row.items()}


def write_csv(points, mode, path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for p in points:
            writer.writerow(csv_row(p, mode))


def _fmt(value, spec, scale=1.0) -> str:
    return "—" if value is None else format(value * scale, spec)


def markdown_table(points, mode) -> str:
    head = ("| ranks | algorithm | samples/s | speedup | efficiency | comm fraction | "
            "step ms | data ms | compute ms | allreduce ms | update ms | status |")
    lines = [head, "|" + " --- |" * 12]
    for p in points:
        cells = [str(p.ranks if p.ranks is not None else "?"), p.algorithm,
                 _fmt(p.samples_per_s, ",.0f"), _fmt(p.speedup, ".2f"),
                 _fmt(p.efficiency, ".0%"), _fmt(p.comm_fraction, ".0%"),
                 _fmt(p.step_time_s, ".2f", 1e3)]
        cells += [_fmt(p.phases.get(ph), ".2f", 1e3) for ph in PHASES]
        cells.append(p.status.replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_report(points, mode, runs, command=None) -> str:
    """The table with what it measured: mode, batches, device, MPI library, hosts, command."""
    parts = [f"# {mode.capitalize()} scaling\n"]
    if command:
        parts.append(f"Command: `{command}`\n")
    parts.append(describe(points, mode, runs) + "\n")
    parts.append(markdown_table(points, mode))
    parts.append("\n" + speedup_note(points) +
                 " Times are milliseconds per step, the slowest rank's, median of the repeats; "
                 "comm fraction is the share of the step spent in the allreduce.\n")
    warning = batch_warning(points, mode)
    if warning:
        parts.append(f"\n{warning}\n")
    return "\n".join(parts)


def speedup_note(points) -> str:
    if any(p.ranks == 1 and p.samples_per_s for p in points):
        base = ("samples/s(1) is the median of all one-rank runs (one rank does not "
                "communicate, whatever the algorithm)")
        formula = "speedup = samples/s(p) / samples/s(1)"
    else:
        base = "p0 is the algorithm's smallest rank count"
        formula = "speedup = p0 · samples/s(p) / samples/s(p0)"
    return f"{formula}, where {base}; efficiency = speedup / p (ideal 100%)."


def describe(points, mode, runs) -> str:
    good = [r.summary for r in runs if r.ok]
    batches = ("global batch " + _distinct(p.global_batch for p in points if p.samples_per_s)
               if mode == "strong" else
               "local batch " + _distinct(p.local_batch for p in points if p.samples_per_s))
    facts = [f"{mode} scaling ({batches})",
             "device " + _distinct(s.get("device") for s in good),
             "steps " + _distinct(s.get("steps") for s in good),
             "MPI " + _distinct(_first_line(s.get("mpi_library")) for s in good),
             "hosts " + _distinct(",".join(s.get("hosts") or []) or None for s in good)]
    return "; ".join(facts) + "."


def _distinct(values) -> str:
    seen = []
    for v in values:
        if v is not None and v not in seen:
            seen.append(v)
    return "/".join(map(str, seen)) if seen else "?"


def _first_line(text):
    """The first line of a library banner, its runs of spaces squeezed."""
    if not isinstance(text, str) or not text.strip():
        return None
    return " ".join(text.strip().splitlines()[0].split())


def write_outputs(runs, out, mode=None, command=None, echo=print):
    """scaling.csv, scaling.md and (matplotlib permitting) scaling.png in `out`.

    Returns (points, mode, written file names).
    """
    from .scaling_plot import plot_scaling

    points = aggregate(runs)
    mode = mode or infer_mode(points)
    os.makedirs(out, exist_ok=True)
    write_csv(points, mode, os.path.join(out, "scaling.csv"))
    with open(os.path.join(out, "scaling.md"), "w") as f:
        f.write(markdown_report(points, mode, runs, command))
    written = ["scaling.csv", "scaling.md"]
    if plot_scaling(points, mode, os.path.join(out, "scaling.png")):
        written.append("scaling.png")
    else:
        echo("note: matplotlib is not installed, so no scaling.png "
             "(pip install 'hpctrain[bench]')")
    return points, mode, written


# ---------------------------------------------------------------- the command

@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(file_okay=False, dir_okay=True))
@click.option("--out", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Where to write scaling.csv, scaling.md and scaling.png.")
@click.option("--mode", type=click.Choice(MODES),
              help="strong or weak scaling; by default inferred from the batch sizes.")
def report(run_dirs, out, mode):
    """Scaling table and plot from existing run directories (e.g. from SLURM jobs).

    Each RUN_DIR is one `hpctrain train --out` directory; runs with the same rank count and
    algorithm are repeats (median). A run without summary.json is listed as FAILED and makes
    the exit status 1.
    """
    for path in run_dirs:
        if not os.path.isdir(path):
            raise InputError("not a run directory", path)
    runs = [load_run(path) for path in run_dirs]
    points, mode, written = write_outputs(runs, out, mode, echo=click.echo)
    click.echo(markdown_table(points, mode), nl=False)
    click.echo(f"wrote {', '.join(os.path.join(out, name) for name in written)}")
    failed = [r for r in runs if not r.ok]
    for r in failed:
        click.echo(f"FAILED: {r.path}: {r.error}", err=True)
    if failed:
        raise SystemExit(EXIT_FAILED)
