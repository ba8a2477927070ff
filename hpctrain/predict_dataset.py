"""`predict --data DIR --split S`: every rank predicts its own rows of a dataset split and
writes them into one output file in row order (shared_output.py), .npy, .h5 or .csv.

The rows are the dataset's stored rows, already standardized like the training rows (as in
`evaluate`), so no standardization is applied. A rank reads, predicts and writes its rows in
blocks of `block_rows`, so its memory does not grow with the split.

Failures: bad input (a checkpoint that does not fit the dataset, an output path) is found by
every rank before anything is written: exit 2, one line. A rank that fails while writing
removes the temporary file (and the CSV parts) and aborts the job (exit 1 within seconds); a
rank that is killed ends the job through the launcher. Either way the output does not exist.
"""

import csv
import io
import time
from contextlib import contextmanager

import numpy as np

from . import shared_output
from .data.ranks import rank_slice
from .evaluate import open_for_dataset
from .failures import abort_on_failure, collective_check
from .faults import FaultPlan
from .predict import check_output_path, class_names, table_header, table_rows
from .world import root_warning

SUFFIXES = (".npy", ".h5", ".csv")
BLOCK_ROWS = 65536


def predict_split(comm, checkpoint, data, split, out, force=False,
                  block_rows=BLOCK_ROWS) -> dict:
    """Write the predictions for every row of `split` to `out`; returns rows, ranks,
    start_s (opening, checking, the kernels loaded) and predict_s (reading, predicting,
    writing: the part that scales with the rows), as rank 0 saw them."""
    started = time.perf_counter()
    job = collective_check(comm, _prepare, comm, checkpoint, data, split, out, force)
    tmp, offset = collective_check(comm, _create, comm, job, out)
    tmp, offset = comm.bcast((tmp, offset) if comm.Get_rank() == 0 else None, root=0)
    leftovers = [tmp] + [shared_output.part_path(tmp, r) for r in range(comm.Get_size())]
    ready = time.perf_counter()
    with abort_on_failure(comm), _removed_on_failure(leftovers):
        _write_own_rows(comm, job, split, out, tmp, offset, block_rows)
        comm.Barrier()  # every rank's rows are written and fsynced
        if comm.Get_rank() == 0:
            shared_output.publish(tmp, out)
    return {"rows": job["rows"], "ranks": comm.Get_size(), "start_s": ready - started,
            "predict_s": time.perf_counter() - ready}


def _prepare(comm, checkpoint, data, split, out, force) -> dict:
    """Every input check, on every rank, before any file is made."""
    check_output_path(out, force, SUFFIXES)
    dataset, state, model = open_for_dataset(data, checkpoint, split, comm)
    model.predict(state.params, np.zeros((1, model.features), np.float32))  # load the kernel
    extra = state.config.get("extra", {}) or {}
    classes = None
    if model.task != "regression":
        classes = class_names(extra, model.classes, state.path, root_warning(comm))
    return {"dataset": dataset, "state": state, "model": model, "classes": classes,
            "rows": dataset.rows(split),
            "width": model.outputs if model.task == "multiclass" else 1}


def _create(comm, job, out):
    if comm.Get_rank() != 0:
        return None, None
    model = job["model"]
    attrs = {"task": model.task, "checkpoint": job["state"].path}
    if job["classes"]:
        attrs["classes"] = job["classes"]
    return shared_output.create(out, job["rows"], job["width"], attrs)


def _write_own_rows(comm, job, split, out, tmp, offset, block_rows) -> None:
    rank = comm.Get_rank()
    start, stop = rank_slice(job["rows"], rank, comm.Get_size())
    model, params, dataset = job["model"], job["state"].params, job["dataset"]
    faults = FaultPlan.from_env(rank)
    if out.endswith(".csv"):
        writer = shared_output.CsvWriter(tmp, rank)
        if rank == 0:
            writer.write_lines(_csv_text([table_header(model.task, job["classes"],
                                                       model.classes)]))
    else:
        writer = shared_output.RowWriter(tmp, offset, start, job["width"])
    # Every rank's file exists before any rank can fail: a failing rank's clean-up then
    # finds them all (a slow peer creating its CSV part after that clean-up left it behind).
    comm.Barrier()
    for index, first in enumerate(range(start, stop, block_rows)):
        faults.block(index)
        X, _ = dataset.read(split, first, min(stop, first + block_rows))
        predictions = model.predict(params, X)
        if isinstance(writer, shared_output.CsvWriter):
            writer.write_lines(_csv_text(table_rows(predictions, model.task, job["classes"])))
        else:
            writer.write(predictions)
    writer.finish(comm)


def _csv_text(rows) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


@contextmanager
def _removed_on_failure(paths):
    """On the failing rank, before it aborts the job: no temporary file stays behind."""
    try:
        yield
    except BaseException:
        shared_output.remove_quietly(paths)
        raise
