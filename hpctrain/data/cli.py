"""`hpctrain data`: make synthetic datasets, import files, inspect and verify datasets.

The modules that do the work (synth, importers, reader, verify) pull in NumPy and h5py, so
each command imports them inside its function, after runtime.configure() fixed the thread
counts; listing the group or asking for --help loads neither. tqdm loads only for a
terminal. Bad input raises InputError; the top-level group turns it into a one-line message
and exit status 2.
"""

import os
import sys
from contextlib import contextmanager

import click

from ..runtime import configure
from .format import ordered_splits

FRACTION = click.FloatRange(0.0, 1.0, max_open=True)


@click.group()
def data():
    """Make, import, inspect and verify HDF5-sharded datasets (see docs/DATA.md)."""


def split_options(fn):
    """--val-fraction, --test-fraction, --seed, --force: shared by synth and import."""
    fn = click.option("--force", is_flag=True,
                      help="Replace an existing dataset at --out (only once the new one is "
                           "complete).")(fn)
    fn = click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                      help="Seed of the data (synth) and of the val/test row choice.")(fn)
    fn = click.option("--test-fraction", type=FRACTION, default=0.0, show_default=True,
                      help="Share of rows held out as the test split.")(fn)
    fn = click.option("--val-fraction", type=FRACTION, default=0.0, show_default=True,
                      help="Share of rows held out as the val split.")(fn)
    return fn


@data.command()
@click.option("--out", required=True, type=click.Path(), help="Dataset directory to create.")
@click.option("--samples", required=True, type=click.IntRange(min=1), help="Rows in total.")
@click.option("--features", required=True, type=click.IntRange(min=1), help="Columns of X.")
@click.option("--classes", type=click.IntRange(min=0), default=2, show_default=True,
              help="2 binary, C > 2 multiclass, 0 regression.")
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True,
              help="Shard files per split.")
@split_options
def synth(out, samples, features, classes, shards, val_fraction, test_fraction, seed, force):
    """Synthetic rows: normal features, labels from a random teacher network.

    The rows depend only on --seed, --samples, --features and --classes, never on --shards.
    """
    configure()
    from .synth import make_synthetic

    with progress_bar(samples) as step:
        manifest = make_synthetic(out, samples, features, classes, shards, val_fraction,
                                  test_fraction, seed, force, progress=step)
    report_written(out, manifest)


@data.command(name="import")
@click.argument("input", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Dataset directory to create.")
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True,
              help="Shard files per split.")
@click.option("--label", help="CSV: the name of the label column.")
@click.option("--label-map", type=click.Choice(["auto"]),
              help="CSV: the labels are class names (yes/no, benign/malignant): number "
                   "them 0..C-1 in sorted order (kept in the manifest as extra.label_names).")
@click.option("--index-col", "index_col", multiple=True, metavar="NAME",
              help="CSV: drop this column unread, e.g. --index-col '' for the row index "
                   "pandas' to_csv writes (repeatable).")
@click.option("--labels", type=click.Path(), help=".npy input: the .npy file of labels.")
@click.option("--task", type=click.Choice(["binary", "multiclass", "regression"]),
              help="Default: inferred from the labels (2 integer values: binary; more "
                   "integers: multiclass; otherwise regression).")
@click.option("--classes", type=click.IntRange(min=0),
              help="Multiclass: the number of classes (default: largest label + 1).")
@click.option("--standardize", is_flag=True,
              help="Scale features to mean 0, std 1 with train-split statistics (kept in "
                   "the manifest).")
@split_options
def import_(input, out, shards, label, label_map, index_col, labels, task, classes,
            standardize, val_fraction, test_fraction, seed, force):
    """Import INPUT: a CSV with a header row, an .npy (with --labels), or an .npz (X, y).

    A CSV is streamed twice (validate, then write) and never loaded whole.
    """
    configure()
    from .importers import import_dataset

    with progress_bar(None) as step:
        manifest = import_dataset(input, out, shards=shards, label=label, labels=labels,
                                  task=task, classes=classes, standardize=standardize,
                                  val_fraction=val_fraction, test_fraction=test_fraction,
                                  seed=seed, force=force, progress=step, index_col=index_col,
                                  label_map=label_map)
    report_written(out, manifest)


@data.command()
@click.argument("directory", type=click.Path())
@click.option("--verify", is_flag=True, help="Check every shard's sha256, shape and dtype.")
def inspect(directory, verify):
    """Show a dataset's task, features, classes, splits and shards."""
    configure()
    from .reader import open_dataset

    with open_dataset(directory) as ds:
        manifest = ds.manifest
    click.echo("\n".join(describe(directory, manifest)))
    if verify:
        from .verify import verify_dataset

        count = verify_dataset(directory)
        click.echo(f"verified  {count} shards: sha256, shapes and dtypes match the manifest; "
                   "features finite, labels in range")


def describe(directory, manifest) -> list:
    """The lines `inspect` prints (and `synth`/`import` after writing)."""
    splits = manifest["splits"]
    std = manifest.get("standardization")
    lines = [
        f"dataset   {os.path.abspath(directory)}",
        f"format    {manifest['format']} v{manifest['version']}",
        f"task      {manifest['task']}",
        f"features  {manifest['features']}",
        f"classes   {manifest['classes']}",
        f"dtype     X {manifest['dtype']}, y {manifest.get('label_dtype', '?')}",
        "standardized  " + ("yes (train-split mean/std in manifest.json)" if std else "no"),
        f"{'split':<8}{'rows':>12}{'shards':>8}",
    ]
    for name in ordered_splits(splits):
        lines.append(f"{name:<8}{splits[name]['rows']:>12}{len(splits[name]['shards']):>8}")
    return lines


def report_written(out, manifest) -> None:
    click.echo(f"wrote {os.path.abspath(out)}")
    click.echo("\n".join(describe(out, manifest)))


@contextmanager
def progress_bar(total):
    """A row counter on stderr for people at a terminal; silent in scripts and logs."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="rows", unit_scale=True, file=sys.stderr, leave=False) as bar:
        yield bar.update
