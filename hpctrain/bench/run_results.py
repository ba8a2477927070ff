"""Reading one `hpctrain train --out` directory into a RunResult, failed or not.

A run that left no usable summary.json (it crashed, timed out, or measured no step) becomes
a result whose `error` says why: the tables keep it as a FAILED row, never drop it.
"""

import json
import math
import os
from dataclasses import dataclass, field


@dataclass
class RunResult:
    """One training run (one repeat of one point); `error` set when it produced no result."""

    path: str
    ranks: int | None
    algorithm: str | None
    summary: dict = field(default_factory=dict)
    error: str | None = None
    sacct: dict | None = None  # SLURM's accounting, set by `bench report` (sacct.py)
    threads: int | None = None  # threads per rank, from config.json (train --threads)

    @property
    def ok(self) -> bool:
        return self.error is None


def load_run(path, ranks=None, algorithm=None, error=None) -> RunResult:
    """Read RUN/summary.json; a missing or unreadable summary becomes a failed result.

    `ranks`/`algorithm` name the point when the run left no summary (the harness knows them);
    otherwise they are taken from config.json where it exists.
    """
    path = str(path)
    summary_path = os.path.join(path, "summary.json")
    summary, problem = {}, error
    try:
        with open(summary_path) as f:
            summary = json.load(f)
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        problem = problem or "no summary.json (the run did not finish)"
    except (OSError, ValueError) as err:
        problem = problem or f"{summary_path}: unreadable: {err}"
        summary = {}
    if not problem:
        problem = missing_keys(summary, summary_path)
    if algorithm is None:
        algorithm = summary.get("algorithm") or _config_value(path, "allreduce")
    if ranks is None:
        ranks = summary.get("ranks")
    threads = _config_value(path, "threads")
    return RunResult(path, ranks, algorithm, summary if not problem else {}, problem,
                     threads=threads if isinstance(threads, int) else None)


def missing_keys(summary: dict, where: str) -> str | None:
    """Why a summary cannot be a point of the table, or None."""
    needed = ("ranks", "algorithm", "samples_per_s")
    absent = [k for k in needed if summary.get(k) is None]
    if absent:
        return f"{where}: missing {', '.join(absent)}"
    rate = summary["samples_per_s"]
    if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        return f"{where}: no measured throughput (samples_per_s {rate}; too few steps?)"
    return None


def _config_value(path, key):
    try:
        with open(os.path.join(path, "config.json")) as f:
            return json.load(f).get(key)
    except (OSError, ValueError, AttributeError):
        return None
