"""Scaling results from run directories: scaling.csv, scaling.md and scaling.png.

Used by `hpctrain bench scaling` (after it ran the points) and `hpctrain bench report RUN...`
(on run directories from anywhere, e.g. SLURM jobs). Reading a run is run_results, reducing
repeats to points and speedups is scaling_points, the text is scaling_tables, the figure
scaling_plot. A run that failed is kept as a row whose status says why, never dropped.
scaling.json holds the same points with the study's provenance (provenance.py), the
command, and per run its directory, status and (under SLURM) sacct's accounting.
A ranks x threads layout sweep (`bench scaling --layouts`, or runs made with different
--threads) has one point per layout, and scaling.md ends with the best layout.
"""

import os

import click

from ..errors import EXIT_FAILED, InputError
from ..metrics import write_json_atomic
from . import provenance, sacct
from .run_results import load_run
from .scaling_layouts import best_layout_line
from .scaling_plot import plot_scaling
from .scaling_points import MODES, aggregate, infer_mode
from .scaling_tables import (
    csv_row,
    is_layout_sweep,
    markdown_report,
    markdown_table,
    write_csv,
)


def write_outputs(runs, out, mode=None, command=None, echo=print, facts=None, extra=None,
                  by_layout=None):
    """scaling.csv, scaling.md, scaling.json and (matplotlib permitting) scaling.png in `out`.

    `facts`: the study's provenance (default: collected now, with the runs' MPI library);
    `extra`: more markdown for scaling.md (e.g. the sacct table); `by_layout`: one point per
    ranks x threads layout (default: when the runs ran with more than one --threads).
    Returns (points, mode, written file names).
    """
    if by_layout is None:
        by_layout = len({r.threads for r in runs if r.threads is not None}) > 1
    points = aggregate(runs, by_layout)
    mode = mode or infer_mode(points)
    facts = facts or provenance.collect(runs_mpi_library(runs))
    os.makedirs(out, exist_ok=True)
    write_csv(points, mode, os.path.join(out, "scaling.csv"))
    with open(os.path.join(out, "scaling.md"), "w") as f:
        f.write(markdown_report(points, mode, runs, command))
        f.write(f"\nProvenance: {provenance.describe(facts)}.\n")
        if extra:
            f.write("\n" + extra)
        if is_layout_sweep(points):
            f.write(f"\n{best_layout_line(points)}\n")
    write_json_atomic(os.path.join(out, "scaling.json"),
                      study_record(points, mode, runs, command, facts))
    written = ["scaling.csv", "scaling.md", "scaling.json"]
    if plot_scaling(points, mode, os.path.join(out, "scaling.png")):
        written.append("scaling.png")
    else:
        echo("note: matplotlib is not installed, so no scaling.png "
             "(pip install 'hpctrain[bench]')")
    return points, mode, written


def runs_mpi_library(runs) -> str | None:
    """The MPI the runs used, from their summaries (the harness itself never starts MPI)."""
    return next((r.summary["mpi_library"] for r in runs
                 if r.ok and r.summary.get("mpi_library")), None)


def study_record(points, mode, runs, command, facts) -> dict:
    run_list = [{"path": r.path, "ranks": r.ranks, "algorithm": r.algorithm,
                 "status": "ok" if r.ok else f"FAILED: {r.error}",
                 **({"sacct": r.sacct} if r.sacct else {})} for r in runs]
    return {"format": "hpctrain-scaling", "version": 1, "mode": mode, "command": command,
            "provenance": facts, "points": [reference_row(p, mode) for p in points],
            "runs": run_list}


def reference_row(point, mode) -> dict:
    """A point as `reference.compare` and scaling.json read it: numbers, None where failed."""
    row = {k: (None if v == "" else v) for k, v in csv_row(point, mode).items()}
    return {**row, "mode": mode}


def print_outcome(points, mode, out, written) -> None:
    """The table and the files written, on stdout: what both commands end with."""
    click.echo(markdown_table(points, mode), nl=False)
    if is_layout_sweep(points):
        click.echo(best_layout_line(points))
    click.echo(f"wrote {', '.join(os.path.join(out, name) for name in written)}")


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
    the exit status 1. Runs that were SLURM jobs (summary.json's slurm.job_id, or a
    directory named hpctrain-run-JOBID) get sacct's Elapsed, MaxRSS and TotalCPU.
    """
    for path in run_dirs:
        if not os.path.isdir(path):
            raise InputError("not a run directory", path)
    runs = [load_run(path) for path in run_dirs]
    sacct.accounting(runs)
    slurm_table = sacct.markdown(runs)
    points, mode, written = write_outputs(runs, out, mode, echo=click.echo, extra=slurm_table)
    if slurm_table:
        click.echo(slurm_table, nl=False)
    print_outcome(points, mode, out, written)
    failed = [r for r in runs if not r.ok]
    for r in failed:
        click.echo(f"FAILED: {r.path}: {r.error}", err=True)
    if failed:
        raise SystemExit(EXIT_FAILED)
