"""The run directory: what it holds, when it may be written, and how it is (re)made.

Checked by rank 0 before any rank starts (refused while it holds a run, unless --resume or
--force), and changed only after every rank agreed the input is good, so a bad flag never
costs the user a previous run.
"""

import json
import os
import shutil

from .config import TrainConfig
from .errors import InputError
from .metrics import write_json_atomic

RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "checkpoints")


def check_run_dir(cfg: TrainConfig) -> None:
    if not cfg.out:
        raise InputError("--out is required")
    if os.path.exists(cfg.out) and not os.path.isdir(cfg.out):
        raise InputError("run directory is a file", cfg.out)
    taken = [f for f in RUN_FILES if os.path.exists(os.path.join(cfg.out, f))]
    if taken and not (cfg.resume or cfg.force):
        raise InputError("run directory already holds a run; use --resume to continue it or "
                         "--force to replace it", cfg.out)


def prepare_run_dir(cfg: TrainConfig) -> None:
    """Rank 0, after every rank agreed the input is good: only now is anything replaced."""
    if cfg.force and not cfg.resume:
        for name in RUN_FILES:
            path = os.path.join(cfg.out, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(os.path.join(cfg.out, "checkpoints"), exist_ok=True)
    write_json_atomic(os.path.join(cfg.out, "config.json"), config_record(cfg))


def config_record(cfg: TrainConfig) -> dict:
    """The config as the plain dict that config.json and every checkpoint hold."""
    return json.loads(cfg.to_json())
