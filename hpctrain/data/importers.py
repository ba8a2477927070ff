"""`hpctrain data import`: a CSV, an .npy pair or an .npz becomes a sharded dataset.

Two passes over the input: `scan` validates every value and learns the row count and the
labels (so the task can be inferred and the classes range-checked before anything is
written), then `blocks` streams the rows into the writer.
"""

import os

from ..errors import InputError
from .arrays import ArraySource, load_npy, load_npz
from .csv_source import CsvSource
from .input_errors import check_is_file, check_positive
from .labels import resolve_named
from .staging import check_out
from .writer import write_dataset

INPUT_TYPES = (".csv", ".npy", ".npz")


LABEL_MAPS = ("auto",)


def open_source(path, label=None, labels=None, chunk_rows=None, index_col=(), label_map=None):
    """The reader for `path`, chosen by its extension, with the options it needs."""
    path = str(path)
    check_is_file(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in INPUT_TYPES:
        raise InputError(f"unsupported input type {ext or '(none)'!r} "
                         f"(expected {', '.join(INPUT_TYPES)})", path=path)
    if ext == ".csv":
        if labels is not None:
            raise InputError("--labels is for .npy input; a CSV names its label column "
                             "with --label", path=path)
        if not label:
            raise InputError("a CSV input needs --label COLUMN", path=path)
        return CsvSource(path, label, chunk_rows=chunk_rows, index_col=index_col,
                         label_map=label_map)
    for given, option in ((index_col, "--index-col"), (label_map, "--label-map")):
        if given:
            raise InputError(f"{option} is for CSV input; {ext} input has no header row",
                             path=path)
    if label is not None:
        raise InputError(f"--label is for CSV input; {ext} input "
                         + ("takes its labels from --labels FILE" if ext == ".npy"
                            else "holds arrays X and y"), path=path)
    if ext == ".npy":
        if labels is None:
            raise InputError("an .npy input needs --labels FILE.npy with one label per row",
                             path=path)
        return ArraySource(load_npy(path), load_npy(labels), path, labels)
    if labels is not None:
        raise InputError("--labels is for .npy input; an .npz holds arrays X and y", path=path)
    X, y = load_npz(path)
    return ArraySource(X, y, path, path)


def import_dataset(input, out, shards=1, label=None, labels=None, task=None, classes=None,
                   standardize=False, val_fraction=0.0, test_fraction=0.0, seed=0,
                   force=False, chunk_rows=None, progress=None, index_col=None,
                   label_map=None) -> dict:
    """Import `input` into a new dataset at `out`; returns the manifest.

    CSV only: `index_col` names a column (or a list of columns) to drop, unread;
    `label_map="auto"` takes the label column's values as class names, numbered in sorted
    order and kept in the manifest as `extra.label_names`.
    """
    check_positive(shards=shards)
    if label_map is not None and label_map not in LABEL_MAPS:
        raise InputError(f"--label-map must be one of {', '.join(LABEL_MAPS)}, "
                         f"got {label_map!r}")
    index_col = (index_col,) if isinstance(index_col, str) else tuple(index_col or ())
    source = open_source(input, label, labels, chunk_rows, index_col, label_map)
    check_out(out, force)
    rows, summary = source.scan()
    names = getattr(source, "class_names", None)
    if names is None:
        task, classes = summary.resolve(task, classes, source.where, source.label_path)
    else:
        task, classes = resolve_named(names, task, classes, label, source.label_path)
    extra = {"source": {"kind": "import", "input": os.path.basename(str(input))}}
    if source.feature_names is not None:
        extra["feature_names"] = source.feature_names
        extra["label_name"] = label
    if names is not None:
        extra["extra"] = {"label_names": names}
    return write_dataset(out, source.blocks(), rows=rows, features=source.features, task=task,
                         classes=classes, shards=shards, val_fraction=val_fraction,
                         test_fraction=test_fraction, seed=seed, standardize=standardize,
                         force=force, extra=extra, source=str(input), progress=progress)
