"""One SPMD training run: every rank runs this same loop in lockstep.

rank 0:     checks the run directory, writes config.json, metrics.jsonl, checkpoints/ and
            summary.json, and shows progress.
every rank: reads only its own rows, computes the gradient SUM of its batch, joins one
            allreduce of [gradient | count | loss | correct | non-finite flag], divides by the
            global count inside the fused update, so parameters stay identical on all ranks.
"""

import math
import os
import shutil
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import checkpoint as ckpt
from .batches import BatchGather, GlobalShuffle, LocalShuffle, local_batch_size
from .config import TrainConfig
from .errors import InputError, RunFailed
from .failures import abort_on_failure, collective_check
from .faults import FaultPlan
from .metrics import PHASES, MetricsLog, StepTimer, gather_phase_stats, write_json_atomic
from .world import mpi_library

# Slots after the gradient in the one buffer that every step allreduces.
COUNT, LOSS, CORRECT, NONFINITE = range(4)
RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "checkpoints")


@dataclass
class Setup:
    """Everything a rank validated before training: agreed on by all ranks."""

    dataset: object
    model: object
    X: np.ndarray
    y: np.ndarray
    row_start: int
    row_stop: int
    n_train: int
    val: tuple | None
    resume_from: object
    device: str


def train(cfg: TrainConfig, comm, started: float) -> dict | None:
    """Run the training; returns the summary on rank 0 (None elsewhere)."""
    setup = collective_check(comm, prepare, cfg, comm)
    stats = setup.dataset.standardization
    if stats is not None:  # so that `predict` can take raw rows, as they were before import
        cfg.extra["standardization"] = {"mean": stats[0].tolist(), "std": stats[1].tolist()}
    with abort_on_failure(comm):  # from here on a failure on one rank aborts every rank
        if comm.Get_rank() == 0:
            prepare_run_dir(cfg)
        return Trainer(cfg, comm, setup, started).run()


def prepare(cfg: TrainConfig, comm) -> Setup:
    """Every check that bad input can fail, run on every rank before any collective."""
    from .comm import get_allreduce
    from .data import open_dataset, rank_slice
    from .model import MLP

    cfg.validate()
    get_allreduce(cfg.allreduce)
    dataset = open_dataset(cfg.data)
    if cfg.task is not None and cfg.task != dataset.task:
        raise InputError(f"dataset task is {dataset.task}, but --task {cfg.task} was asked for",
                         cfg.data)
    if "train" not in dataset.splits or dataset.rows("train") == 0:
        raise InputError("dataset has no training rows", cfg.data)
    model = MLP(dataset.features, cfg.hidden, cfg.activation, dataset.task, dataset.classes)
    if comm.Get_rank() == 0:
        check_run_dir(cfg)
    resume_from = None
    if cfg.resume and ckpt.list_checkpoints(cfg.out):
        warn = print_stderr if comm.Get_rank() == 0 else (lambda _: None)
        resume_from = ckpt.newest_good(cfg.out, model, warn=warn)
    rank, size = comm.Get_rank(), comm.Get_size()
    n_train = dataset.rows("train")
    start, stop = rank_slice(n_train, rank, size)
    X, y = dataset.read("train", start, stop)
    val = dataset.read_rank("val", rank, size) if "val" in dataset.splits else None
    return Setup(dataset, model, X, y, start, stop, n_train, val, resume_from,
                 resolve_device(cfg.device))


def resolve_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    from .cuda_engine import cuda_available

    ok, reason = cuda_available()
    if device == "cuda" and not ok:
        raise InputError(f"--device cuda: no usable GPU ({reason})")
    return "cuda" if ok else "cpu"


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
    write_json_atomic(os.path.join(cfg.out, "config.json"), cfg_dict(cfg))


def cfg_dict(cfg: TrainConfig) -> dict:
    import json

    return json.loads(cfg.to_json())


def print_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Trainer:
    def __init__(self, cfg: TrainConfig, comm, setup: Setup, started: float):
        from .comm import get_allreduce
        from .engine import make_engine
        from .kernels.checks import all_finite

        self.all_finite = all_finite  # one pass over the reduced gradient, every step
        self.cfg, self.comm, self.s, self.started = cfg, comm, setup, started
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.model = setup.model
        self.allreduce = get_allreduce(cfg.allreduce)
        params = self.initial_params()
        optimizer_args = dict(name=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        self.engine = make_engine(setup.device, self.model, optimizer_args, params)
        self.first_step = 0
        if setup.resume_from is not None:
            self.engine.load(setup.resume_from.params, setup.resume_from.optimizer_state)
            self.first_step = setup.resume_from.step
        self.plan_batches()
        self.n = self.model.n_params
        # A pinned buffer (CUDA) lets the gradient go to and from the GPU without extra copies.
        make = getattr(self.engine, "host_buffer", None)
        self.buf = make(self.n + 4) if make else np.zeros(self.n + 4, dtype=np.float32)
        self.faults = FaultPlan.from_env(self.rank)
        self.overlap = None
        if cfg.bucket_mb > 0 and setup.device == "cpu":
            from .overlap import OverlappedStep

            self.overlap = OverlappedStep(self.model, comm, self.allreduce, self.buf,
                                          int(cfg.bucket_mb * 2**20))
        self.final = {}

    # --- set-up -----------------------------------------------------------------------------

    def initial_params(self) -> np.ndarray:
        """Rank 0 draws them from the seed; everyone receives the same bits."""
        if self.rank == 0:
            params = self.model.init_params(self.cfg.seed)
        else:
            params = np.empty(self.model.n_params, dtype=np.float32)
        self.comm.Bcast(params, root=0)
        return params

    def plan_batches(self) -> None:
        from mpi4py import MPI

        cfg, s = self.cfg, self.s
        self.global_batch = cfg.global_batch or cfg.batch_size * self.size
        if cfg.shuffle == "global":
            self.plan = GlobalShuffle(s.n_train, self.global_batch, cfg.seed,
                                      s.row_start, s.row_stop)
            self.max_rows = self.global_batch
        else:
            local = (local_batch_size(cfg.global_batch, self.rank, self.size)
                     if cfg.global_batch else cfg.batch_size)
            self.plan = LocalShuffle(len(s.X), local, cfg.seed, self.rank)
            self.max_rows = max(local, 1)
        # Every rank must take the same number of steps, or one would wait in a collective
        # that another never enters: agree on the largest need.
        self.steps_per_epoch = max(self.comm.allreduce(self.plan.steps_needed(), op=MPI.MAX), 1)
        self.total_steps = cfg.total_steps(self.steps_per_epoch)
        self.prefetch = hasattr(self.engine, "prefetch")
        self.gather = BatchGather(s.X, s.y, self.max_rows, slots=2 if self.prefetch else 1)
        self.epoch_plans, self.pending = {}, None
        reference = cfg.batch_size
        scale = self.global_batch / reference if cfg.lr_scaling == "linear" else 1.0
        self.target_lr = cfg.lr * scale

    def lr_at(self, step: int) -> float:
        warm = self.cfg.warmup_steps
        return self.target_lr * min(1.0, (step + 1) / warm) if warm else self.target_lr

    def warm_up_kernels(self) -> None:
        """Compile once per node: the node's first rank fills the Numba cache, then the rest
        load it, so 16 ranks do not compile 16 times."""
        from mpi4py import MPI

        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        scratch = np.zeros(self.n, dtype=np.float32)
        x, y = self.s.X[:1], self.s.y[:1]
        for turn in (0, 1):
            if (node.Get_rank() == 0) == (turn == 0):
                self.engine.loss_grad(x, y, scratch)
                self.all_finite(scratch)
            node.Barrier()
        node.Free()

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> dict | None:
        self.warm_up_kernels()
        self.log = (MetricsLog(os.path.join(self.cfg.out, "metrics.jsonl"))
                    if self.rank == 0 else None)
        self.bar = self.progress_bar()
        timer = StepTimer()
        interval = Interval()
        run_times, measured, busy = np.zeros(len(PHASES)), 0, 0.0
        time_to_first = None
        for step in range(self.first_step, self.total_steps):
            t_step = time.perf_counter()
            epoch, k = divmod(step, self.steps_per_epoch)
            self.one_step(step, timer, interval)
            last = step + 1 == self.total_steps
            if (step + 1) % self.cfg.log_every == 0 or last:
                self.log_step(step, epoch, interval)
            if time_to_first is None:
                # The first step carries one-off costs: it is reported, not averaged in.
                time_to_first = time.perf_counter() - self.started
            else:
                run_times += timer.times
                measured += 1
                busy += time.perf_counter() - t_step  # validation and checkpoints excluded
            if k + 1 == self.steps_per_epoch and self.s.val is not None:
                self.validate(epoch, step)
            if self.cfg.checkpoint_every and (step + 1) % self.cfg.checkpoint_every == 0:
                self.save_checkpoint(step + 1)
        if self.total_steps > self.first_step and not (
                self.cfg.checkpoint_every and self.total_steps % self.cfg.checkpoint_every == 0):
            self.save_checkpoint(self.total_steps)
        if self.bar is not None:
            self.bar.close()
        if self.overlap is not None:
            self.overlap.close()
        summary = self.summarize(busy, measured, time_to_first, run_times)
        if self.log is not None:
            self.log.close()
        return summary

    def rows_for(self, step: int) -> np.ndarray:
        """This rank's rows at `step` (plans of the current and the next epoch are kept)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch not in self.epoch_plans:
            if len(self.epoch_plans) >= 2:
                self.epoch_plans.pop(min(self.epoch_plans))
            self.epoch_plans[epoch] = self.plan.epoch(epoch)
        return self.epoch_plans[epoch](k)

    def next_batch(self, step: int):
        """This step's batch. An engine that can copy ahead (CUDA) is also handed the next
        step's batch now, gathered into the other of two buffers, so its copy overlaps this
        step's compute."""
        if not self.prefetch:
            return self.gather(self.rows_for(step))
        batch = self.pending if self.pending is not None else self.gather(self.rows_for(step))
        self.pending = None
        if step + 1 < self.total_steps:
            self.pending = self.gather(self.rows_for(step + 1))
            self.engine.prefetch(*self.pending)
        return batch

    def one_step(self, step: int, timer: StepTimer, interval) -> None:
        buf, n, cfg = self.buf, self.n, self.cfg
        grad = buf[:n]
        timer.start()
        X, y = self.next_batch(step)
        timer.lap(0)

        def set_tail(loss, correct):
            loss = self.faults.corrupt(step, loss, grad)
            buf[n + COUNT], buf[n + LOSS], buf[n + CORRECT] = len(X), loss, correct
            buf[n + NONFINITE] = 0.0 if math.isfinite(loss) else 1.0

        if self.overlap is not None:
            self.overlap.run(self.engine.params_host(), X, y, set_tail, timer)
        else:
            set_tail(*self.engine.loss_grad(X, y, grad))
            timer.lap(1)
            self.allreduce(self.comm, buf)
            timer.lap(2)
        # Every rank holds the same reduced bits, so every rank reaches the same verdict here
        # without another collective; the flag slot is the MAX-reduced "my loss was bad".
        if buf[n + NONFINITE] > 0 or not math.isfinite(buf[n + LOSS]) or not self.all_finite(grad):
            raise RunFailed(f"non-finite loss or gradient at step {step + 1}; stopping. The last "
                            f"good checkpoint in {os.path.join(cfg.out, 'checkpoints')} is kept.")
        count = float(buf[n + COUNT])
        if count > 0:
            self.engine.step(grad, 1.0 / count, self.lr_at(step))
        timer.lap(3)
        interval.add(count, float(buf[n + LOSS]), float(buf[n + CORRECT]), timer.times)

    # --- rank 0's records -------------------------------------------------------------------

    def progress_bar(self):
        if self.rank != 0 or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return tqdm(total=self.total_steps, initial=self.first_step, unit="step",
                    dynamic_ncols=True)

    def log_step(self, step: int, epoch: int, interval) -> None:
        phases = gather_phase_stats(self.comm, interval.per_step_times())
        record = interval.record(step, epoch, self.lr_at(step))
        interval.reset()
        if self.rank != 0:
            return
        record["time"] = phases
        self.final.update(loss=record["loss"], accuracy=record["accuracy"])
        self.log.write(record)
        message = (f"loss {record['loss']:.4f}  acc {record['accuracy']:.3f}  "
                   f"{record['samples_per_s']:,.0f} samples/s")
        if self.bar is not None:
            self.bar.n = step + 1
            self.bar.set_postfix_str(message, refresh=True)
        else:
            print(f"epoch {epoch + 1}  step {step + 1}/{self.total_steps}  {message}", flush=True)

    def validate(self, epoch: int, step: int) -> None:
        """Loss and accuracy on the val split: each rank its rows, one reduction."""
        from mpi4py import MPI

        Xv, yv = self.s.val
        loss, correct = self.model.evaluate(self.engine.params_host(), Xv, yv)
        sums = np.array([loss, correct, len(yv)], dtype=np.float64)
        self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        if self.rank == 0 and sums[2] > 0:
            record = {"epoch": epoch, "step": step + 1, "val_loss": sums[0] / sums[2],
                      "val_accuracy": sums[1] / sums[2]}
            self.final.update(val_loss=record["val_loss"], val_accuracy=record["val_accuracy"])
            self.log.write(record)
            if self.bar is None:
                print(f"epoch {epoch + 1}  val loss {record['val_loss']:.4f}  "
                      f"val acc {record['val_accuracy']:.3f}", flush=True)

    def save_checkpoint(self, step: int) -> None:
        if self.rank != 0:
            return
        epoch, k = divmod(step, self.steps_per_epoch)
        rng = {"seed": self.cfg.seed, "shuffle": self.cfg.shuffle, "epoch": epoch,
               "step_in_epoch": k, "scheme": "numpy default_rng([seed, epoch(, rank)])"}
        ckpt.save(self.cfg.out, self.model, self.engine.params_host(),
                  self.engine.optimizer_state(), step, epoch, k, rng, cfg_dict(self.cfg))

    def summarize(self, busy, measured, time_to_first, run_times) -> dict | None:
        from mpi4py import MPI

        per_step = run_times / max(measured, 1)
        phases = gather_phase_stats(self.comm, per_step)
        first = self.comm.reduce(time_to_first or 0.0, op=MPI.MAX, root=0)
        hosts = self.comm.gather(MPI.Get_processor_name(), root=0)
        if self.rank != 0:
            return None
        step_time = busy / measured if measured else float("nan")
        samples_per_s = self.global_batch / step_time if measured else float("nan")
        mean_total = sum(p["mean"] for p in phases.values())
        summary = {
            "ranks": self.size, "algorithm": self.cfg.allreduce, "device": self.s.device,
            "bucket_mb": self.cfg.bucket_mb if self.overlap is not None else 0,
            "global_batch": self.global_batch, "local_batch": self.global_batch / self.size,
            "shuffle": self.cfg.shuffle, "steps": self.total_steps,
            "measured_steps": measured, "step_time_s": step_time,
            "samples_per_s": samples_per_s, "samples_per_s_per_rank": samples_per_s / self.size,
            "time_to_first_step_s": first,
            "comm_fraction": phases["allreduce"]["mean"] / mean_total if mean_total else 0.0,
            "phase_times_s": {p: v["max"] for p, v in phases.items()},
            "phase_times_mean_s": {p: v["mean"] for p, v in phases.items()},
            "final": self.final, "model": self.model.spec(), "parameters": self.n,
            "dataset": os.path.abspath(self.cfg.data),
            "mpi_library": mpi_library(),
            "hosts": sorted(set(hosts)),
        }
        if self.cfg.allreduce == "auto":
            from .comm import auto

            summary["auto_choices"] = auto.choices()
        write_json_atomic(os.path.join(self.cfg.out, "summary.json"), summary)
        return summary


class Interval:
    """Sums since the last log line: samples, loss, correct, phase seconds, wall time."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.samples = self.loss = self.correct = 0.0
        self.times = np.zeros(len(PHASES))
        self.steps = 0
        self.t0 = time.perf_counter()

    def add(self, samples, loss, correct, times):
        self.samples += samples
        self.loss += loss
        self.correct += correct
        self.times += times
        self.steps += 1

    def per_step_times(self) -> np.ndarray:
        return self.times / max(self.steps, 1)

    def record(self, step: int, epoch: int, lr: float) -> dict:
        wall = time.perf_counter() - self.t0
        n = max(self.samples, 1.0)
        return {"epoch": epoch, "step": step + 1, "loss": self.loss / n,
                "accuracy": self.correct / n, "samples_per_s": self.samples / wall if wall else 0,
                "lr": lr}
