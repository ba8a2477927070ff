"""`hpctrain train`, `evaluate`, `predict` and `demo`.

Heavy imports (numpy, numba, mpi4py) happen inside the commands, after `runtime.configure`
fixed the thread counts: those are read once, when the libraries load.
"""

import json
import os
import time

import click

from . import runtime
from .config import (  # the choices click shows: config's plain tuples (see there)
    ACTIVATIONS,
    ALLREDUCES,
    MAX_THREADS,
    OPTIMIZERS,
    PRECISIONS,
    TASKS,
    TrainConfig,
    check_values,
    load_toml,
    parse_hidden,
)
from .errors import InputError
from .world import world

STARTED = time.perf_counter()


def train_options(f):
    """The training flags; their defaults are TrainConfig's (the seed's model, Adam 1e-3)."""
    d = TrainConfig()
    options = [
        click.option("--data", type=click.Path(),
                     help="Dataset directory (hpctrain data ...).  [required, unless --config "
                          "or --resume's config.json gives it]"),
        click.option("--out", type=click.Path(),
                     help="Run directory to write.  [required, unless --config gives it]"),
        click.option("--hidden", default="64", show_default=True,
                     help="Hidden layer sizes, comma-separated ('' for a linear model)."),
        click.option("--activation", default=d.activation, show_default=True,
                     type=click.Choice(ACTIVATIONS), help="Hidden layers' activation."),
        click.option("--task", default=None, type=click.Choice(TASKS),
                     help="Expected task; checked against the dataset's."),
        click.option("--optimizer", default=d.optimizer, show_default=True,
                     type=click.Choice(OPTIMIZERS), help="The update rule."),
        click.option("--lr", type=float, default=d.lr, show_default=True,
                     help="Learning rate (before --lr-scaling and warm-up)."),
        click.option("--momentum", type=float, default=d.momentum, show_default=True,
                     help="SGD momentum."),
        click.option("--weight-decay", type=float, default=d.weight_decay, show_default=True,
                     help="Decoupled weight decay: theta -= lr * wd * theta each step."),
        click.option("--batch-size", type=int, default=d.batch_size, show_default=True,
                     help="Local batch per rank."),
        click.option("--global-batch", type=int, default=None,
                     help="Global batch, split over the ranks (overrides --batch-size)."),
        click.option("--epochs", type=int, default=None,
                     help="Passes over the data (default 5, or as many as --steps needs)."),
        click.option("--steps", type=int, default=None,
                     help="Total steps; with --epochs too, whichever ends first."),
        click.option("--seed", type=int, default=d.seed, show_default=True,
                     help="Seed of the initial parameters and of every shuffle."),
        click.option("--shuffle", default=d.shuffle, show_default=True,
                     type=click.Choice(("local", "global")),
                     help="local: each rank shuffles its rows; global: one permutation of all "
                          "rows (the model does not depend on the rank count)."),
        click.option("--lr-scaling", default=d.lr_scaling, show_default=True,
                     type=click.Choice(("none", "linear")),
                     help="linear: lr x global batch / --batch-size."),
        click.option("--warmup-steps", type=int, default=d.warmup_steps, show_default=True,
                     help="Linear learning-rate warm-up."),
        click.option("--allreduce", default=d.allreduce, show_default=True,
                     type=click.Choice(ALLREDUCES),
                     help="Gradient allreduce (tree: the old name of doubling; auto: the "
                          "fastest, measured and cached per machine and layout)."),
        click.option("--bucket-mb", type=float, default=d.bucket_mb, show_default=True,
                     help="Overlap the allreduce with the backward pass in buckets of this "
                          "many MB (0: off; CPU only)."),
        click.option("--device", default=d.device, show_default=True,
                     type=click.Choice(("cpu", "cuda", "auto")),
                     help="Where the kernels run (auto: a GPU if one is usable)."),
        click.option("--precision", default=d.precision, show_default=True,
                     type=click.Choice(PRECISIONS),
                     help="Of the GPU's large matrix products (cuBLAS): tf32 or bf16 use the "
                          "tensor cores; weights and optimizer state stay fp32. GPU only."),
        click.option("--threads", type=int, default=None,
                     help=f"Numba/BLAS threads per rank, 1 to {MAX_THREADS} (default: "
                          "$SLURM_CPUS_PER_TASK, else $NUMBA_NUM_THREADS, else "
                          "$OMP_NUM_THREADS, else 1)."),
        click.option("--log-every", type=int, default=d.log_every, show_default=True,
                     help="Steps between metrics.jsonl lines (and progress lines)."),
        click.option("--checkpoint-every-s", type=float, default=d.checkpoint_every_s,
                     show_default=True, help="Seconds between checkpoints (0: off), so a "
                                             "killed job loses at most this much work."),
        click.option("--keep-checkpoints", type=int, default=d.keep_checkpoints,
                     show_default=True, help="Keep the newest K checkpoints (0: all)."),
        click.option("--stall-timeout", type=float, default=None,
                     help="Seconds a step may wait for a rank before the job ends naming it "
                          "(default: max(120, 50 x the median step); 0: off)."),
        click.option("--checkpoint-every", type=int, default=d.checkpoint_every,
                     show_default=True, help="Steps between checkpoints (0: at the end only)."),
        click.option("--reproducible", is_flag=True,
                     help="The same parameters, bit for bit, on any number of ranks and with "
                          "any allreduce (needs --global-batch and --shuffle global; CPU)."),
        click.option("--micro-batch", type=int, default=d.micro_batch, show_default=True,
                     help="Rows per micro-batch of --reproducible (the bits depend on it)."),
        click.option("--trace", type=click.Path(dir_okay=False),
                     help="Write a per-rank timeline of the steps to FILE (Chrome trace-event "
                          "JSON: open it in Perfetto or chrome://tracing)."),
        click.option("--trace-steps", metavar="A:B",
                     help="The steps --trace keeps, 1-based, both included (default: the "
                          "first 100 of this start)."),
        click.option("--tensorboard/--no-tensorboard", default=d.tensorboard,
                     help="Also write TensorBoard event files to RUN/tensorboard/ (needs the "
                          "tensorboard extra)."),
        click.option("--resume", is_flag=True, help="Continue from the newest good checkpoint."),
        click.option("--force", is_flag=True, help="Replace an existing run directory."),
        click.option("--config", "config_file", type=click.Path(),
                     help="TOML file with any of these options (flags given win)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def build_config(ctx, flags: dict) -> TrainConfig:
    """Defaults < the resumed run's config.json < --config TOML < flags given on the line.
    Every value is checked (config.RULES) before anything starts: an InputError names the
    flag, or the file and its key."""
    given = {k: v for k, v in flags.items()
             if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    given.pop("config_file", None)
    values = {}
    if flags.get("resume") and flags.get("out"):
        saved = os.path.join(flags["out"], "config.json")
        if os.path.exists(saved):
            values.update(check_values(read_saved_config(saved), saved))
            # how this start runs, not what the run is: the flags (and the job) decide
            for name in ("resume", "force", "threads", "trace", "trace_steps"):
                values.pop(name, None)
    if flags.get("config_file"):
        values.update(load_toml(flags["config_file"]))
    values.update(given)
    values.setdefault("hidden", flags["hidden"])
    values["hidden"] = parse_hidden(values["hidden"])
    for required in ("data", "out"):
        if not values.get(required):
            raise InputError(f"--{required} is required")
    cfg = TrainConfig.from_dict(values)
    cfg.validate()
    return cfg


def read_saved_config(path) -> dict:
    """The config.json of the run being resumed; InputError naming it if unusable."""
    try:
        with open(path) as f:
            saved = json.load(f)
    except OSError as err:
        raise InputError(f"cannot read the run's config: {err.strerror}", path) from None
    except ValueError as err:
        raise InputError(f"the run's config is not valid JSON ({err})", path) from None
    if not isinstance(saved, dict):
        raise InputError("the run's config is not a JSON object", path)
    return saved


@click.command()
@train_options
@click.pass_context
def train(ctx, **flags):
    """Train an MLP; run under mpiexec/mpirun/srun for data parallelism."""
    try:
        cfg = build_config(ctx, flags)
        cfg.threads = runtime.resolve_threads(cfg.threads)  # recorded in config.json
    except InputError as err:
        # Every rank parses the same line and files and fails alike, before MPI starts:
        # rank 0 alone says it (cli.report_error), every rank exits 2.
        err.collective = True
        raise
    runtime.configure(cfg.threads)
    from .training import train as run_training
    from .world import print_stderr

    comm = world()
    runtime.check_oversubscription(comm, cfg.threads, print_stderr)
    summary = run_training(cfg, comm, started=STARTED)
    if summary is not None:
        final = summary["final"]
        parts = [f"{k} {v:.4f}" for k, v in sorted(final.items())]
        click.echo(f"done: {summary['steps']} steps on {summary['ranks']} rank(s), "
                   f"{summary['samples_per_s']:,.0f} samples/s; " + ", ".join(parts))


@click.command()
@click.option("--data", required=True, type=click.Path(), help="Dataset directory.")
@click.option("--checkpoint", required=True, type=click.Path(),
              help="Checkpoint file (.h5), a run directory or its checkpoints/ (the newest "
                   "good one).")
@click.option("--split", default="test", show_default=True,
              type=click.Choice(("train", "val", "test")), help="Which split of the dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")
def evaluate(data, checkpoint, split, as_json):
    """Loss and accuracy of a checkpoint on a dataset split (distributed under mpiexec), with
    per-class precision, recall, F1 and the confusion matrix, or R² for regression."""
    runtime.configure()
    from .evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(world(), data, checkpoint, split)
    if result is None:
        return
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        from .eval_metrics import report_lines

        accuracy = result["accuracy"]
        click.echo(f"{split}: {result['rows']} rows  loss {result['loss']:.4f}"
                   + ("" if accuracy is None else f"  accuracy {accuracy:.4f}"))
        click.echo("\n".join(report_lines(result)))


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(),
              help="Checkpoint file (.h5) of `hpctrain train` or `fit(...).save`, a run directory "
                   "or its checkpoints/ (the newest good one).")
@click.option("--input", "input_path", type=click.Path(),
              help="Features as .csv (numeric, optional header) or .npy (one process).")
@click.option("--data", type=click.Path(),
              help="Instead of --input: a dataset directory, predicted by every rank of an "
                   "mpiexec job, each its own rows.")
@click.option("--split", default="test", show_default=True, help="The split of --data.")
@click.option("--out", required=True, type=click.Path(),
              help="Predictions: .csv or .npy (with --data also .h5), in row order.")
@click.option("--block-rows", default=65536, show_default=True, type=click.IntRange(min=1),
              help="With --data: rows each rank reads, predicts and writes at a time.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
def predict(checkpoint, input_path, data, split, out, block_rows, force):
    """Write the model's predictions for new rows, or for a dataset split under mpiexec."""
    if (input_path is None) == (data is None):
        raise click.UsageError("give exactly one of --input FILE and --data DIR")
    runtime.configure()
    if data is not None:
        from .predict_dataset import predict_split

        done = predict_split(world(), checkpoint, data, split, out, force, block_rows)
        if world().Get_rank() == 0:
            click.echo(f"wrote {done['rows']} predictions to {out} ({done['ranks']} rank(s), "
                       f"{done['rows'] / max(done['predict_s'], 1e-9):,.0f} rows/s after "
                       f"{done['start_s']:.1f} s of start-up)")
        return
    from .predict import predict_file

    rows = predict_file(checkpoint, input_path, out, force)
    click.echo(f"wrote {rows} predictions to {out}")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("-n", "--ranks", required=True, type=click.IntRange(min=1),
              help="MPI ranks of the job (mpiexec -n).")
@click.option("--max-restarts", default=3, show_default=True, type=click.IntRange(min=0),
              help="How many times a failed job is started again from its newest checkpoint.")
@click.option("--mpiexec-args", default="", help='Extra mpiexec arguments, e.g. "-bind-to core".')
@click.argument("args", nargs=-1, type=click.UNPROCESSED, required=True)
def run(ranks, max_restarts, mpiexec_args, args):
    """Run `hpctrain ARGS` under mpiexec; restart it with --resume when it fails.

    Example: hpctrain run -n 4 --max-restarts 3 -- train --data D --out RUN
    """
    import shlex

    from .restart import run_with_restarts

    if args[0] != "train":
        raise InputError(f"hpctrain run restarts training jobs: ARGS must start with 'train', "
                         f"not {args[0]!r}")
    raise SystemExit(run_with_restarts(ranks, max_restarts, list(args),
                                       shlex.split(mpiexec_args)))


@click.command()
@click.option("--out", default="hpctrain-demo", show_default=True, type=click.Path(),
              help="Directory for the demo dataset and run.")
@click.option("--ranks", default=2, show_default=True, type=click.IntRange(min=1),
              help="MPI ranks of the training run.")
@click.option("--samples", default=20000, show_default=True, type=click.IntRange(min=10),
              help="Rows of the synthetic dataset.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1),
              help="Passes over the training rows.")
@click.option("--allreduce", default="ring", show_default=True, type=click.Choice(ALLREDUCES),
              help="The gradient allreduce.")
def demo(out, ranks, samples, epochs, allreduce):
    """The built-in default job: a synthetic dataset, then a 2-rank training run under mpiexec."""
    runtime.configure()
    from .demo import run_demo

    run_demo(out, ranks, samples, epochs, allreduce)
