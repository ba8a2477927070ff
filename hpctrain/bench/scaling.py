"""`hpctrain bench scaling`: a strong or weak scaling study, one short training job per point.

A point is (rank count, allreduce algorithm, repeat). The harness makes one synthetic dataset
sized for the mode (the workloads of docs/WORKLOADS.md), then starts `hpctrain train` under
the launcher (`mpiexec -n P` or `srun -n P`) once per point, each with a timeout, and collects
the run's summary.json. scaling_plan says what runs, scaling_jobs runs it, report writes
scaling.csv, scaling.md and scaling.png. With --layouts the points are the ranks x threads
layouts of one node's cores instead of rank counts (scaling_layouts).

A failed point is kept as a FAILED row and makes the exit status 1 at the end.
"""

import os
import shlex
import shutil
import sys

import click

from ..errors import EXIT_FAILED, InputError
from . import provenance, reference, scaling_layouts
from .report import print_outcome, reference_row, write_outputs
from .scaling_jobs import check_out_dir, clear_runs, run_study
from .scaling_plan import (
    dataset_rows,
    launch_prefix,
    parse_names,
    parse_ranks,
    plan_runs,
    resolve_workload,
    train_command,
)
from .scaling_points import MODES
from .workloads import WORKLOADS


def make_data(out, mode, work, ranks, samples, echo) -> str:
    from ..data.synth import make_synthetic  # h5py: only when a dataset is made

    data = os.path.join(out, "data")
    rows = samples or dataset_rows(mode, work, max(ranks))
    echo(f"synthetic data: {rows} rows x {work.features} features, {work.classes} classes, "
         f"{max(ranks)} shards -> {data}")
    # force: check_out_dir already refused an earlier study's data unless --force was given
    make_synthetic(data, samples=rows, features=work.features, classes=work.classes,
                   shards=max(ranks), seed=0, force=True)
    return data


def check_numbers(repeats, timeout, steps) -> None:
    for name, value in (("--repeats", repeats), ("--timeout", timeout)):
        if value <= 0:
            raise InputError(f"{name} must be positive, got {value:g}")
    if steps < 2:
        raise InputError(f"--steps must be at least 2 (the first is warm-up), got {steps}")


def check_launcher(launcher) -> None:
    program = launch_prefix(launcher, 1, [])[0]
    if shutil.which(program) is None:
        raise InputError(f"launcher {program!r} not found on PATH")


@click.command("scaling")
@click.option("--mode", type=click.Choice(MODES), required=True,
              help="strong: fixed global batch; weak: fixed local batch per rank.")
@click.option("--ranks", default="1,2,4,8,16", show_default=True,
              help="Comma-separated rank counts.")
@click.option("--layouts", "layouts_text", metavar="CORES|RxT,...",
              help="Instead of --ranks, sweep ranks x threads per rank on one node's cores "
                   "(--mode strong): 16 runs every R x T = 16 (16x1, 8x2, 4x4, 2x8, 1x16), "
                   "8x2,4x4 just those; each point is `train --threads T` with each rank "
                   "given T cores (see --bind-args). Adds layout and threads columns and "
                   "ends scaling.md with the best layout.")
@click.option("--bind-args", metavar="TEMPLATE",
              help="With --layouts: the launcher arguments that give each rank {threads} "
                   "cores (default: Open MPI '--map-by slot:PE={threads}', MPICH "
                   "'-bind-to core:{threads}', srun '--cpus-per-task {threads}'; '' for "
                   "none).")
@click.option("--workload", default="W1", show_default=True,
              help=f"{' or '.join(WORKLOADS)} (docs/WORKLOADS.md); the flags below override "
                   "its values.")
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
              show_default=True, help="How each point starts its ranks (srun: inside a "
                                      "SLURM allocation, with HPCTRAIN_SRUN_MPI's plugin).")
@click.option("--mpiexec-args", default="",
              help='Extra launcher arguments, e.g. "--bind-to core" (Open MPI).')
@click.option("--train-args", default="", help='Extra `hpctrain train` arguments for every '
              'run, e.g. "--device cuda".')
@click.option("--timeout", default=600.0, show_default=True, type=float,
              help="Seconds one run may take before it counts as failed.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Output directory (default: scaling-MODE; scaling-layouts with "
                   "--layouts).")
@click.option("--force", is_flag=True, help="Replace an earlier study in --out.")
@click.option("--reference", "reference_path", type=click.Path(dir_okay=False),
              help="TOML/JSON of this machine's expected values (docs/PERFORMANCE.md, "
                   "'Reference values'): exit 1 when a point is worse than its tolerance.")
def scaling(mode, ranks, layouts_text, bind_args, workload, features, hidden, classes,
            batch_size, global_batch, samples, data_dir, allreduce, steps, repeats, launcher,
            mpiexec_args, train_args, timeout, out, force, reference_path):
    """Strong or weak scaling: one short training run per rank count and algorithm
    (with --layouts: per ranks x threads layout of one node's cores and algorithm).

    Writes OUT/scaling.csv, OUT/scaling.md and OUT/scaling.png, plus each run's directory
    under OUT/runs and its output under OUT/logs. Exit status 1 if any run failed.
    """
    ranks_given = (click.get_current_context().get_parameter_source("ranks")
                   == click.core.ParameterSource.COMMANDLINE)
    layouts = scaling_layouts.from_options(layouts_text, bind_args, mode, ranks_given,
                                           shlex.split(train_args))
    rank_counts = [r for r, _ in layouts] if layouts else parse_ranks(ranks)
    algorithms = parse_names(allreduce, "--allreduce")
    work = resolve_workload(workload.upper(), features, hidden, classes, batch_size,
                            global_batch)
    check_numbers(repeats, timeout, steps)
    check_launcher(launcher)
    if layouts:
        bind_args = scaling_layouts.prepare(layouts, bind_args, launcher, click.echo)
    refs = None if reference_path is None else reference.load(
        reference_path, "scaling", provenance.collect()["hostname"])
    if data_dir is not None and not os.path.isdir(data_dir):
        raise InputError("no such dataset directory", data_dir)
    out = out or ("scaling-layouts" if layouts else f"scaling-{mode}")
    check_out_dir(out, force)
    data = data_dir or make_data(out, mode, work, rank_counts, samples, click.echo)
    clear_runs(out)

    def make_cmd(point, run_dir):
        extra = shlex.split(mpiexec_args)
        if point.threads is not None:
            extra += scaling_layouts.bind_args(bind_args, point.threads)
        return train_command(point, launcher, extra, data, run_dir, mode, work, steps,
                             shlex.split(train_args))

    planned = plan_runs(rank_counts, algorithms, repeats, layouts)
    results = run_study(planned, make_cmd, out, timeout)
    command = "hpctrain " + shlex.join(sys.argv[1:])
    points, mode, written = write_outputs(results, out, mode, command, click.echo,
                                          by_layout=layouts is not None)
    print_outcome(points, mode, out, written)
    passed = refs is None or reference.report(
        refs, [reference_row(p, mode) for p in points], click.echo)
    failed = [r for r in results if not r.ok]
    if not passed and not failed:
        raise SystemExit(EXIT_FAILED)
    if failed:
        click.echo(f"{len(failed)} of {len(results)} runs FAILED (see the status column)",
                   err=True)
        raise SystemExit(EXIT_FAILED)
