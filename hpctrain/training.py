"""`train`: one SPMD training run, from a TrainConfig to a summary.

rank 0:     checks the run directory, writes config.json, metrics.jsonl, checkpoints/ and
            summary.json, and shows progress.
every rank: reads only its own rows, computes the gradient SUM of its batch, joins one
            allreduce of the step buffer (hpctrain.gradsync), divides by the global count
            inside the fused update, so parameters stay identical on all ranks.

Two phases with two failure rules (hpctrain.failures): the start-up checks run on every rank
and a bad input anywhere ends every rank with exit status 2 before anything is written; from
then on ranks are in lockstep, and a failure on one rank aborts the job.
"""

import os
import time

from .config import TrainConfig
from .errors import Stopped
from .failures import abort_on_failure, collective_check
from .rundir import prepare_run_dir
from .runlock import RunLock
from .startup import prepare
from .trainer import Trainer
from .world import print_stderr, world


def train(cfg: TrainConfig, comm=None, started: float | None = None) -> dict | None:
    """Run the training; returns the summary on rank 0 (None elsewhere)."""
    comm = world() if comm is None else comm
    started = time.perf_counter() if started is None else started
    warn = print_stderr if comm.Get_rank() == 0 else ignore
    lock = RunLock(cfg.out or ".")  # rank 0 takes it in prepare; freed however the run ends
    try:
        job = collective_check(comm, prepare, cfg, comm, warn, lock)
        if job.standardization is not None:  # so that `predict` can take raw rows
            mean, std = job.standardization
            cfg.extra["standardization"] = {"mean": mean.tolist(), "std": std.tolist()}
        # so that `predict` matches CSV columns by name and names the classes (a resumed
        # run's config.json may hold an older dataset's: this dataset's names replace them)
        names = collective_check(comm, column_names, cfg.data, job.model, warn)
        for key in ("feature_names", "label_name", "label_names"):
            cfg.extra.pop(key, None)
        cfg.extra.update(names)
        with abort_on_failure(comm):  # from here on a failure on one rank aborts every rank
            if comm.Get_rank() == 0:
                prepare_run_dir(cfg, job.resume_from.step if job.resume_from else None)
            trainer = Trainer(cfg, comm, job.model, job.rows, job.device, job.val,
                              job.resume_from, out=cfg.out, started=started)
            summary = trainer.run()
            # nobody leaves before rank 0 has written everything: under srun
            # --kill-on-bad-exit, one rank's exit 3 would end rank 0's writes
            comm.Barrier()
    finally:
        lock.release()
    if trainer.stopped_at is not None:
        raise Stopped(f"stopped at step {trainer.stopped_at} of {trainer.total_steps} on "
                      f"{trainer.signals.name()}; its checkpoint is in "
                      f"{os.path.join(cfg.out, 'checkpoints')}: continue with --resume")
    return summary


def column_names(data, model, warn) -> dict:
    """The dataset's recorded names, for cfg.extra: `feature_names` and `label_name` (from a
    CSV import's header) and `label_names` (class id -> original label), each when present
    and fitting the model; a malformed one is left out with a warning (predict then goes by
    position / by class id, as without names)."""
    from .data.format import read_manifest

    manifest = read_manifest(data)
    nested = manifest.get("extra")  # the importer writes them at top level; read both
    found = {**(nested if isinstance(nested, dict) else {}), **manifest}
    names = {}

    def strings(key, count, kinds=(str,)):
        value = found.get(key)
        if value is None:
            return None
        if (isinstance(value, list) and all(isinstance(v, kinds) and not isinstance(v, bool)
                                            for v in value)
                and len(value) == count and len({str(v) for v in value}) == count):
            return [str(v) for v in value]
        warn(f"hpctrain: warning: {data}: manifest {key!r} is not {count} distinct names; "
             f"not recorded")
        return None

    if features := strings("feature_names", model.features):
        names["feature_names"] = features
        if isinstance(found.get("label_name"), str):
            names["label_name"] = found["label_name"]
    if model.task != "regression" and (classes := strings("label_names", model.classes,
                                                             (str, int, float))):
        names["label_names"] = classes
    return names


def ignore(message: str) -> None:
    pass
