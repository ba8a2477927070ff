"""Scaling results from run directories: scaling.csv, scaling.md and scaling.png.

Used by `hpctrain bench scaling` (after it ran the points) and `hpctrain bench report RUN...`
(on run directories from anywhere, e.g. SLURM jobs). Reading a run is run_results, reducing
repeats to points and speedups is scaling_points, the text is scaling_tables, the figure
scaling_plot. A run that failed is kept as a row whose status says why, never dropped.
"""

import os

import click

from ..errors import EXIT_FAILED, InputError
from .run_results import load_run
from .scaling_plot import plot_scaling
from .scaling_points import MODES, aggregate, infer_mode
from .scaling_tables import markdown_report, markdown_table, write_csv


def write_outputs(runs, out, mode=None, command=None, echo=print):
    """scaling.csv, scaling.md and (matplotlib permitting) scaling.png in `out`.

    Returns (points, mode, written file names).
    """
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


def print_outcome(points, mode, out, written) -> None:
    """The table and the files written, on stdout: what both commands end with."""
    click.echo(markdown_table(points, mode), nl=False)
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
    the exit status 1.
    """
    for path in run_dirs:
        if not os.path.isdir(path):
            raise InputError("not a run directory", path)
    runs = [load_run(path) for path in run_dirs]
    points, mode, written = write_outputs(runs, out, mode, echo=click.echo)
    print_outcome(points, mode, out, written)
    failed = [r for r in runs if not r.ok]
    for r in failed:
        click.echo(f"FAILED: {r.path}: {r.error}", err=True)
    if failed:
        raise SystemExit(EXIT_FAILED)
