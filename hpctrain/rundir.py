"""The run directory: what it holds, when it may be written, and how it is (re)made.

Checked by rank 0 before any rank starts (refused while it holds a run, unless --resume or
--force), and changed only after every rank agreed the input is good, so a bad flag never
costs the user a previous run. hpctrain marks the directories it makes (MARKER); `--force`
deletes only what hpctrain wrote there and refuses a directory that holds anything else.
"""

import json
import os
import re
import shutil

from . import __version__
from . import checkpoint as ckpt
from .atomic import replacing, writing
from .config import TrainConfig
from .errors import InputError
from .metrics import write_json_atomic
from .runlock import LOCK_NAME

RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "checkpoints", "tensorboard")
MARKER = ".hpctrain-run"
# Temporary files of writers that were killed (hpctrain.atomic's names): removed at start.
STALE = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$|^.+\.tmp-\d+(\.npy|\.csv)?$")


def check_run_dir(cfg: TrainConfig) -> None:
    if not cfg.out:
        raise InputError("--out is required")
    if os.path.exists(cfg.out) and not os.path.isdir(cfg.out):
        raise InputError("run directory is a file", cfg.out)
    taken = [f for f in RUN_FILES if os.path.exists(os.path.join(cfg.out, f))]
    if taken and not (cfg.resume or cfg.force):
        raise InputError("run directory already holds a run; use --resume to continue it or "
                         "--force to replace it", cfg.out)
    if cfg.force and not cfg.resume:
        check_only_ours(cfg.out)


def check_only_ours(folder) -> None:
    """--force may delete this directory's run: refuse unless hpctrain made it and nothing
    but hpctrain's files is in it."""
    entries = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    if not entries - {LOCK_NAME}:
        return
    if MARKER not in entries:
        raise InputError(f"--force: not deleting a directory hpctrain did not make (it has no "
                         f"{MARKER} marker)", folder)
    foreign = sorted(e for e in entries - {MARKER, LOCK_NAME, *RUN_FILES}
                     if not STALE.match(e))
    checkpoints = os.path.join(folder, "checkpoints")
    if os.path.isdir(checkpoints):
        foreign += [os.path.join("checkpoints", e) for e in sorted(os.listdir(checkpoints))
                    if not (ckpt.NAME.match(e) or STALE.match(e))]
    if foreign:
        raise InputError(f"--force: not deleting files hpctrain did not write: "
                         f"{', '.join(foreign[:5])}" + (" ..." if len(foreign) > 5 else ""),
                         folder)


def prepare_run_dir(cfg: TrainConfig, resume_step: int | None = None) -> None:
    """Rank 0, after every rank agreed the input is good: only now is anything replaced.
    Resuming from step S drops the log's records past S (a run stopped or killed after its
    last checkpoint logged steps that will now run again), so each step is logged once."""
    with writing(cfg.out):
        _prepare(cfg, resume_step)


def _prepare(cfg: TrainConfig, resume_step: int | None) -> None:
    if cfg.force and not cfg.resume:
        for name in RUN_FILES:
            path = os.path.join(cfg.out, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(os.path.join(cfg.out, "checkpoints"), exist_ok=True)
    remove_stale_temporaries(cfg.out)
    marker = os.path.join(cfg.out, MARKER)
    if not os.path.exists(marker):
        write_json_atomic(marker, {"made_by": "hpctrain", "version": __version__})
    write_json_atomic(os.path.join(cfg.out, "config.json"), config_record(cfg))
    if resume_step is not None:
        truncate_log(os.path.join(cfg.out, "metrics.jsonl"), resume_step)


def remove_stale_temporaries(folder) -> None:
    """Temporary files left by writers that were killed (the run's lock is ours, so none of
    them is being written now)."""
    for where in (folder, os.path.join(folder, "checkpoints")):
        for name in os.listdir(where):
            if STALE.match(name):
                os.unlink(os.path.join(where, name))


def truncate_log(path, last_step: int) -> None:
    """Keep only the records of metrics.jsonl up to step `last_step` (and unreadable lines
    out: a line cut by a crash mid-write)."""
    if not os.path.exists(path):
        return
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("step", 0) <= last_step:
                kept.append(line if line.endswith("\n") else line + "\n")
    with replacing(path) as tmp, open(tmp, "w") as f:
        f.writelines(kept)


def config_record(cfg: TrainConfig) -> dict:
    """The config as the plain dict that config.json and every checkpoint hold."""
    return json.loads(cfg.to_json())
