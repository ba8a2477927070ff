"""`--tensorboard`: the numbers of metrics.jsonl as TensorBoard scalars, in RUN/tensorboard/.

Written by rank 0 beside metrics.jsonl, record for record (hpctrain.records), with
tensorboardX's SummaryWriter: a small pure-Python package (NumPy and protobuf) that writes
the event-file format TensorBoard reads, without PyTorch or TensorFlow (docs/OBSERVABILITY.md
says why this writer). Loaded only when asked for: a missing one is one line, exit 2, naming
the extra to install.

Tags: train/loss, train/accuracy, train/lr, train/samples_per_s, time/PHASE_mean and
time/PHASE_max (seconds per step over ranks), val/loss, val/accuracy; the step is the
record's (1-based) step. A resumed run purges the events past its checkpoint, as
metrics.jsonl drops its records past it.
"""

import os

from .errors import InputError

FOLDER = "tensorboard"
TRAIN_TAGS = {"loss": "train/loss", "accuracy": "train/accuracy", "lr": "train/lr",
              "samples_per_s": "train/samples_per_s", "val_loss": "val/loss",
              "val_accuracy": "val/accuracy"}


def require_writer():
    """The tensorboardX module, or an InputError saying how to install it."""
    try:
        import tensorboardX
    except ImportError:
        raise InputError("--tensorboard needs tensorboardX: pip install 'hpctrain[tensorboard]' "
                         "(or leave out --tensorboard)") from None
    return tensorboardX


class BoardLog:
    def __init__(self, out: str, first_step: int):
        writer = require_writer().SummaryWriter
        # a resume from step S drops what an earlier start logged after S
        self.writer = writer(logdir=os.path.join(out, FOLDER), flush_secs=10,
                             purge_step=first_step + 1 if first_step else None)

    def write(self, record: dict) -> None:
        """One metrics.jsonl record: a logged step, or a validation."""
        step = record["step"]
        for key, tag in TRAIN_TAGS.items():
            if record.get(key) is not None:
                self.writer.add_scalar(tag, record[key], step)
        for phase, stats in (record.get("time") or {}).items():
            self.writer.add_scalar(f"time/{phase}_mean", stats["mean"], step)
            self.writer.add_scalar(f"time/{phase}_max", stats["max"], step)

    def close(self) -> None:
        self.writer.close()
