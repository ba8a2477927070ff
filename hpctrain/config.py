"""The training configuration: one flat record, saved as config.json, enough to repeat a run."""

import dataclasses
import json
import math
import numbers
import os
import tomllib
from dataclasses import dataclass, field

from .errors import InputError
from .steps_window import parse_window

DEFAULT_EPOCHS = 5

# The choices of the string options. Plain tuples here (config is imported before NumPy, Numba
# and MPI load); tests/test_cli.py keeps them equal to the modules' own lists.
ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")
TASKS = ("binary", "multiclass", "regression")
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("fp32", "tf32", "bf16")     # kernels/cuda_blas.py PRECISIONS, without its import
ALLREDUCES = ("auto", "ring", "doubling", "tree", "native", "shm")
MAX_INT = 2**53  # far above any real size or count; keeps every int exact in JSON and int64
MAX_THREADS = 4096


@dataclass(frozen=True)
class Rule:
    """What one field accepts: its type, its range, whether None (left out) is allowed."""

    kind: str  # int | float | bool | path | choice | hidden | table | window
    low: float | None = None  # inclusive minimum
    high: float | None = None  # inclusive maximum
    below: float | None = None  # exclusive maximum
    above: float | None = None  # exclusive minimum
    choices: tuple = ()
    optional: bool = False

    def expects(self) -> str:
        """'an integer >= 1', 'a finite number in [0, 1)', 'one of adam, sgd', ..."""
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        fixed = {"bool": "true or false", "path": "a path (a string)", "table": "a table",
                 "window": "steps A:B with 1 <= A <= B (e.g. 1:100)",
                 "hidden": "positive integers, comma-separated ('64,64') or a list ([64, 64])"}
        if self.kind in fixed:
            return fixed[self.kind]
        what = "an integer" if self.kind == "int" else "a finite number"
        low = f"[{self.low:g}" if self.low is not None else \
            f"({self.above:g}" if self.above is not None else None
        high = f"{self.below:g})" if self.below is not None else \
            f"{self.high:g}]" if self.high is not None and self.high < MAX_INT else None
        if low and high:
            return f"{what} in {low}, {high}"
        if low:
            return f"{what} {'>=' if low[0] == '[' else '>'} {low[1:]}"
        return what

    def check(self, value):
        """(the value as the field holds it, whether it is acceptable)."""
        if value is None:
            return (None, True) if self.optional else (None, False)
        kind = self.kind
        if kind == "bool":
            return value, isinstance(value, bool)
        if kind == "choice":
            return value, isinstance(value, str) and value in self.choices
        if kind == "path":
            ok = isinstance(value, (str, os.PathLike))
            return (os.fspath(value) if ok else None), ok
        if kind == "table":
            return value, isinstance(value, dict)
        if kind == "window":
            return value, parse_window(value) is not None
        if kind == "hidden":
            try:
                sizes = parse_hidden(value)
            except InputError:
                return None, False
            return sizes, all(s <= MAX_INT for s in sizes)
        # numbers: a bool is not a number here, a float is not an integer
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None, False
        if kind == "int":
            if not isinstance(value, numbers.Integral):
                return None, False
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                return value, False
        ok = ((self.low is None or value >= self.low)
              and (self.above is None or value > self.above)
              and (self.below is None or value < self.below)
              and (self.high is None or value <= self.high))
        return value, ok


def _int(low, optional=False, high=MAX_INT):
    return Rule("int", low=low, high=high, optional=optional)


def _float(low=None, above=None, below=None, optional=False):
    return Rule("float", low=low, above=above, below=below, optional=optional)


# Every field of TrainConfig -> what it accepts. Checked for the flags, the --config TOML, the
# config.json of a resumed run and TrainConfig.validate (the Python API) alike.
RULES = {
    "data": Rule("path"),
    "out": Rule("path"),
    "hidden": Rule("hidden"),
    "activation": Rule("choice", choices=ACTIVATIONS),
    "task": Rule("choice", choices=TASKS, optional=True),
    "optimizer": Rule("choice", choices=OPTIMIZERS),
    "lr": _float(above=0),
    "momentum": _float(low=0, below=1),
    "weight_decay": _float(low=0),
    "batch_size": _int(1),
    "global_batch": _int(1, optional=True),
    "epochs": _int(1, optional=True),
    "steps": _int(1, optional=True),
    "seed": _int(0),
    "shuffle": Rule("choice", choices=("local", "global")),
    "lr_scaling": Rule("choice", choices=("none", "linear")),
    "warmup_steps": _int(0),
    "allreduce": Rule("choice", choices=ALLREDUCES),
    "bucket_mb": _float(low=0),
    "device": Rule("choice", choices=("cpu", "cuda", "auto")),
    "precision": Rule("choice", choices=PRECISIONS),
    "threads": _int(1, optional=True, high=MAX_THREADS),
    "log_every": _int(1),
    "checkpoint_every": _int(0),
    "checkpoint_every_s": _float(low=0),
    "keep_checkpoints": _int(0),
    "stall_timeout": _float(low=0, optional=True),
    "reproducible": Rule("bool"),
    "micro_batch": _int(1),
    "tensorboard": Rule("bool"),
    "trace": Rule("path", optional=True),
    "trace_steps": Rule("window", optional=True),
    "resume": Rule("bool"),
    "force": Rule("bool"),
    "extra": Rule("table"),
}


def flag(name: str) -> str:
    """batch_size -> --batch-size"""
    return "--" + name.replace("_", "-")


def shown(value) -> str:
    """A value as the user wrote it: true, "2", 1.5, nan."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return f"{value!r} ({type(value).__name__})"


def check_field(name: str, value, label: str | None = None, path=None):
    """The field's value, normalized (an int lr becomes a float, '64,64' a tuple); else an
    InputError naming `label` (default: the flag) and the file `path`, if any."""
    rule = RULES[name]
    normalized, ok = rule.check(value)
    if not ok:
        raise InputError(f"{label or flag(name)} must be {rule.expects()}, got {shown(value)}",
                         path)
    return normalized


def check_values(values: dict, path=None, where: str = "", keys: dict | None = None) -> dict:
    """Check every key of a dict of field values (a TOML table, a saved config.json): unknown
    keys and bad values are an InputError naming the key as written (`keys`: field -> the
    key in the file) and the file."""
    keys = keys or {}
    unknown = sorted(keys.get(k, k) for k in values if k not in RULES)
    if unknown:
        raise InputError(f"{where}unknown key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)} (the keys are the long option names, e.g. "
                         f"batch-size)", path)
    return {name: check_field(name, value, f"{where}{keys.get(name, name)}", path)
            for name, value in values.items()}


@dataclass
class TrainConfig:
    data: str = ""
    out: str = ""
    hidden: tuple = (64,)
    activation: str = "relu"
    task: str | None = None  # when given, must match the dataset's task
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 256  # local batch per rank
    global_batch: int | None = None  # overrides batch_size: split over the ranks
    epochs: int | None = None  # None: 5, or as many as --steps needs when it is given
    steps: int | None = None  # stop after this many steps in all
    seed: int = 0
    shuffle: str = "local"  # local | global
    lr_scaling: str = "none"  # none | linear
    warmup_steps: int = 0
    allreduce: str = "auto"  # measured per size class at start-up, cached per machine
    bucket_mb: float = 0.0  # > 0: overlap the allreduce with backward, in buckets this big
    device: str = "cpu"
    precision: str = "fp32"  # of the GPU's large products; tf32 | bf16 need --device cuda
    threads: int | None = None  # None: runtime.resolve_threads (SLURM_CPUS_PER_TASK, ...)
    log_every: int = 10
    checkpoint_every: int = 0  # steps; 0: by time and at the end only
    checkpoint_every_s: float = 600.0  # seconds: a kill -9 loses at most this much; 0: off
    keep_checkpoints: int = 3  # the newest K are kept, older ones deleted; 0: keep all
    stall_timeout: float | None = None  # seconds; None: max(120, 50 median steps); 0: off
    reproducible: bool = False  # the same bits for any rank count (fixed_point.py)
    micro_batch: int = 256  # rows per micro-batch of --reproducible (the bits depend on it)
    tensorboard: bool = False  # also write RUN/tensorboard/ (hpctrain.tensorboard_log)
    trace: str | None = None  # a per-rank timeline, trace-event JSON (hpctrain.timeline)
    trace_steps: str | None = None  # "A:B": the steps the trace keeps (steps_window.py)
    resume: bool = False
    force: bool = False
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown configuration keys: {', '.join(unknown)}")
        d = dict(d)
        if "hidden" in d:
            d["hidden"] = parse_hidden(d["hidden"])
        return cls(**d)

    def total_steps(self, clock) -> int:
        """--steps alone means exactly that many steps (epochs as needed); --epochs alone
        means whole passes over the data (default 5); both: whichever ends first. `clock`
        (batches.EpochClock) says which step ends an epoch, also after a resume at another
        rank count."""
        if self.epochs is None:
            return self.steps if self.steps else clock.end_of_epoch(DEFAULT_EPOCHS)
        total = clock.end_of_epoch(self.epochs)
        return min(total, self.steps) if self.steps else total

    def validate(self) -> None:
        """Flag values that can never work, before any rank touches data: every field's type
        and range (RULES), one InputError naming the option."""
        for name in RULES:
            setattr(self, name, check_field(name, getattr(self, name)))
        if self.reproducible:
            check_reproducible(self)
        if self.precision != "fp32" and self.device == "cpu":
            raise InputError(f"--precision {self.precision} is for the GPU's products "
                             f"(--device cuda); the CPU path computes in fp32")
        if self.trace_steps is not None and not self.trace:
            raise InputError("--trace-steps says which steps --trace FILE keeps: give --trace")


def check_reproducible(cfg) -> None:
    """--reproducible promises the same bits for any rank count: only where that holds."""
    if not cfg.global_batch or cfg.shuffle != "global":
        raise InputError("--reproducible needs a global batch that does not depend on the rank "
                         "count: give --global-batch G and --shuffle global")
    if cfg.device != "cpu":
        raise InputError("--reproducible runs on the CPU only (--device cpu): the CUDA "
                         "kernels' sums are not yet made exact (docs/REPRODUCIBLE.md)")
    if cfg.bucket_mb:
        raise InputError("--reproducible sums each micro-batch before the allreduce; it "
                         "cannot overlap it with backward: leave out --bucket-mb")


def parse_hidden(value) -> tuple:
    """'64,64' or [64, 64] (or 64) -> (64, 64); '' or 'none' -> () (a linear model).
    Sizes are whole numbers: 1.5 or true is an InputError, not 1."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str) or (isinstance(value, numbers.Integral)
                                    and not isinstance(value, bool)):
        text = str(value).strip().lower()
        items = [] if text in ("", "none", "0") else text.split(",")
    else:
        items = [value]
    sizes = []
    for item in items:
        if isinstance(item, str) and item.strip().lstrip("+-").isdecimal():
            item = int(item.strip())
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise InputError(f"--hidden must be comma-separated integers, got {value!r}")
        sizes.append(int(item))
    if any(s <= 0 for s in sizes):
        raise InputError(f"--hidden sizes must be positive, got {value!r}")
    return tuple(sizes)


def load_toml(path) -> dict:
    """A TOML config file's [train] table (or its top level): keys are the long flag names,
    with - or _. Every key and value is checked here, naming the file and the key."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as err:
        raise InputError(f"cannot read config: {err.strerror}", path) from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"not valid TOML: {err}", path) from None
    except UnicodeDecodeError:
        raise InputError("not valid TOML: not UTF-8 text", path) from None
    where = ""
    if "train" in doc:
        if not isinstance(doc["train"], dict):
            raise InputError(f"train must be a table ([train] on a line of its own, then "
                             f"key = value lines), got {shown(doc['train'])}", path)
        doc, where = doc["train"], "[train] "
    keys = {k.replace("-", "_"): k for k in doc}
    values = {k.replace("-", "_"): v for k, v in doc.items()}
    return check_values(values, path, where, keys)
