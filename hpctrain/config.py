"""The training configuration: one flat record, saved as config.json, enough to repeat a run."""

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field

from .errors import InputError

DEFAULT_EPOCHS = 5


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
    threads: int = 1
    log_every: int = 10
    checkpoint_every: int = 0  # steps; 0: by time and at the end only
    checkpoint_every_s: float = 600.0  # seconds: a kill -9 loses at most this much; 0: off
    keep_checkpoints: int = 3  # the newest K are kept, older ones deleted; 0: keep all
    stall_timeout: float | None = None  # seconds; None: max(120, 50 median steps); 0: off
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

    def total_steps(self, steps_per_epoch: int) -> int:
        """--steps alone means exactly that many steps (epochs as needed); --epochs alone
        means whole epochs (default 5); both: whichever ends first."""
        if self.epochs is None:
            return self.steps if self.steps else DEFAULT_EPOCHS * steps_per_epoch
        total = steps_per_epoch * self.epochs
        return min(total, self.steps) if self.steps else total

    def validate(self) -> None:
        """Flag values that can never work, before any rank touches data."""
        positive = {"batch_size": self.batch_size, "lr": self.lr,
                    "log_every": self.log_every, "threads": self.threads}
        for name, value in positive.items():
            if value is None or value <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
        for name in ("global_batch", "steps", "epochs"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if min(self.checkpoint_every, self.checkpoint_every_s, self.keep_checkpoints,
               self.warmup_steps, self.weight_decay, self.bucket_mb) < 0:
            raise InputError("--checkpoint-every, --checkpoint-every-s, --keep-checkpoints, "
                             "--warmup-steps, --weight-decay and --bucket-mb must be >= 0")
        if self.stall_timeout is not None and not self.stall_timeout >= 0:
            raise InputError(f"--stall-timeout must be >= 0, got {self.stall_timeout}")
        if not 0 <= self.momentum < 1:
            raise InputError(f"--momentum must be in [0, 1), got {self.momentum}")
        choices = {"shuffle": ("local", "global"), "lr_scaling": ("none", "linear"),
                   "device": ("cpu", "cuda", "auto")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")


def parse_hidden(value) -> tuple:
    """'64,64' or [64, 64] -> (64, 64); '' or 'none' -> () (a linear model)."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        text = str(value).strip().lower()
        items = [] if text in ("", "none", "0") else text.split(",")
    try:
        sizes = tuple(int(v) for v in items)
    except ValueError:
        raise InputError(f"--hidden must be comma-separated integers, got {value!r}") from None
    if any(s <= 0 for s in sizes):
        raise InputError(f"--hidden sizes must be positive, got {value!r}")
    return sizes


def load_toml(path) -> dict:
    """A TOML config file's [train] table (or its top level): keys are the long flag names."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as err:
        raise InputError(f"cannot read config: {err.strerror}", path) from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"not valid TOML: {err}", path) from None
    table = doc.get("train", doc)
    return {k.replace("-", "_"): v for k, v in table.items()}
