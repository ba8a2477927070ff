"""The training loop: every rank runs it in lockstep, one allreduce per step.

    for each step:  batch -> gradient sum (engine) -> allreduce (gradient sync) -> update
                    log, validate at the end of an epoch, checkpoint when due

Every rank takes the same steps and holds the same parameters; `is_root` (rank 0) alone writes
files. Each job around the loop lives in its own module: the batches (batches.py), the lr
schedule (schedule.py), the step buffer and its allreduce (gradsync.py), the engine that holds
parameters and optimizer state (engine.py, cuda_engine.py), rank 0's records (records.py) and
the checkpoints (checkpoint.py).
"""

import os
import sys
import time

import numpy as np
from mpi4py import MPI

from . import checkpoint as ckpt
from . import settings
from .batches import Batches, EpochClock, local_batch_size, make_plan
from .comm import auto, get_allreduce
from .comm.kernel_jobs import kernel_jobs
from .compile_note import kernels_cached, say_if_compiling
from .config import TrainConfig
from .engine import make_engine
from .errors import RunFailed
from .exact_sync import ExactGradientSync, exact_validation
from .faults import FaultPlan
from .gradsync import GradientSync
from .kernels.finite import all_finite
from .metrics import StepTimer
from .microbatches import MicroBatches
from .node_compile import compile_on_node
from .records import RunRecords
from .rundir import config_record
from .schedule import LearningRate
from .signals import StopRequests
from .slurm_job import slurm_job
from .startup import RankRows
from .timeline import Timeline
from .watchdog import Watchdog
from .world import mpi_library, print_stderr


class Trainer:
    """cfg: the run's settings; rows: this rank's training rows; val: its (X, y) validation
    rows or None; resume_from: a Checkpoint to continue; out: the run directory (None: write
    nothing, as the Python API's `fit` does)."""

    def __init__(self, cfg: TrainConfig, comm, model, rows: RankRows, device: str = "cpu",
                 val=None, resume_from=None, out: str | None = None, started: float = None):
        self.cfg, self.comm, self.model, self.rows, self.val = cfg, comm, model, rows, val
        self.device, self.out = device, out
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.is_root = self.rank == 0

        self.engine = make_engine(device, model, dict(
            name=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum,
            weight_decay=cfg.weight_decay), self.initial_params(), cfg.precision)
        self.first_step = 0
        if resume_from is not None:
            self.engine.load(resume_from.params, resume_from.optimizer_state)
            self.first_step = resume_from.step

        self.global_batch = cfg.global_batch or cfg.batch_size * self.size
        local_batch = (local_batch_size(cfg.global_batch, self.rank, self.size)
                       if cfg.global_batch else cfg.batch_size)
        plan, max_rows = make_plan(cfg.shuffle, rows.n_total, len(rows.X), rows.start,
                                   self.global_batch, local_batch, cfg.seed, self.rank)
        # Every rank must take the same number of steps, or one would wait in a collective
        # that another never enters: agree on the largest need.
        self.steps_per_epoch = max(comm.allreduce(plan.steps_needed(), op=MPI.MAX), 1)
        self.clock, note = EpochClock.resumed(self.steps_per_epoch, self.global_batch,
                                              resume_from)
        if note and self.is_root:
            print(f"hpctrain: note: {note}", file=sys.stderr, flush=True)
        self.total_steps = cfg.total_steps(self.clock)
        self.batches = None if cfg.reproducible else Batches(  # else: microbatches.py
            plan, rows.X, rows.y, max_rows, self.clock, self.total_steps,
            getattr(self.engine, "prefetch", None), getattr(self.engine, "hold_rows", None),
            getattr(self.engine, "host_buffer", None))
        # the global rows this epoch has trained on so far: where a resume at another rank
        # count (other steps per epoch) continues the epoch
        self.samples_in_epoch = 0.0
        if resume_from is not None:
            self.samples_in_epoch = resume_from.rng.get("samples_in_epoch", 0.0)
        self.lr = LearningRate(cfg.lr, cfg.lr_scaling, self.global_batch, cfg.batch_size,
                               cfg.warmup_steps)

        self.faults = FaultPlan.from_env(self.rank)
        self.grad_on_gpu = False
        if cfg.reproducible:  # exact sums of micro-batches: the same bits for any P
            micro = MicroBatches(comm, plan, self.clock, rows.X, rows.y, cfg.micro_batch)
            exponent = resume_from.rng.get("exact_exponent") if resume_from else None
            self.sync = ExactGradientSync(comm, model.n_params, get_allreduce(cfg.allreduce),
                                          self.faults, micro,
                                          exponent)
        else:
            overlap = cfg.bucket_mb > 0 and device == "cpu"
            # One rank on a GPU has nothing to reduce: its gradient stays there, and only
            # the step's totals go through the (one-rank) step buffer.
            self.grad_on_gpu = self.size == 1 and device == "cuda"
            self.sync = GradientSync(comm, 0 if self.grad_on_gpu else model.n_params,
                                     cfg.allreduce,
                                     all_finite, self.faults,
                                     alloc=getattr(self.engine, "host_buffer", None),
                                     bucket_bytes=int(cfg.bucket_mb * 2**20) if overlap else 0)
        self.saved_at, self.saved_step = 0.0, self.first_step
        self.signals = StopRequests()
        self.stopped_at = None
        self.stop_signal = None
        self.records = RunRecords(comm, out, cfg.log_every, self.first_step, self.total_steps,
                                  time.perf_counter() if started is None else started,
                                  tensorboard=cfg.tensorboard)
        self.timeline = Timeline(comm, cfg.trace, cfg.trace_steps, self.first_step,
                                 self.total_steps)

    def initial_params(self) -> np.ndarray:
        """Rank 0 draws them from the seed; everyone receives the same bits."""
        if self.is_root:
            params = self.model.init_params(self.cfg.seed)
        else:
            params = np.empty(self.model.n_params, dtype=np.float32)
        self.comm.Bcast(params, root=0)
        return params

    def compile_jobs(self) -> tuple[list, list]:
        """(jobs, parts) for hpctrain.node_compile: the kernels of a step and of validation,
        each run once on throwaway inputs of the run's types, and the pieces of the step's
        kernel; the gradient buffer's contents are then undefined."""
        X, y = self.rows.X[:1], self.rows.y[:1]
        scratch = None if self.grad_on_gpu else self.sync.local
        jobs, parts = [lambda: self.engine.loss_grad(X, y, scratch)], []
        if scratch is not None:
            jobs.append(lambda: all_finite(scratch))
        if self.device == "cpu":        # the GPU's kernels are CUDA's own
            jobs.append(self.engine.optimizer.compile_kernel)
            parts = self.engine.loss_grad_parts(X, y, scratch)
        if self.val is not None and not self.cfg.reproducible:
            Xv, yv = self.val
            jobs.append(lambda: self.model.evaluate(self.engine.params_host(), Xv[:1], yv[:1]))
        jobs += kernel_jobs(self.comm, np.float32, [self.sync.facts.get("reduction")])
        return jobs, parts

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> dict | None:
        """Train to the end, or to the step at which a stop signal reached the ranks; the
        summary on rank 0 (None elsewhere). `stopped_at` then says where it stopped."""
        self.signals.install()
        self.watchdog = Watchdog(self.comm, self.cfg.stall_timeout)
        if self.is_root and self.out and self.device == "cpu":
            say_if_compiling(print_stderr)
        finished = False
        try:
            jobs, parts = self.compile_jobs()
            compile_on_node(self.comm, jobs, parts, cached=kernels_cached)
            self.sync.prepare()
            self.loop()
            finished = True
        finally:
            self.watchdog.close()
            if self.stopped_at is None:
                self.signals.restore()
            # Freeing a shared window is collective: a rank that failed alone must not wait
            # in it for ranks still in the step (its failure ends the job anyway).
            self.sync.close(collective=finished)
            self.records.close()
        self.timeline.write()
        return self.summarize()

    def loop(self) -> None:
        timer = StepTimer()
        self.saved_at = time.monotonic()  # the time between checkpoints counts from here
        self.records.begin()
        last = self.first_step
        for step in range(self.first_step, self.total_steps):
            began = time.perf_counter()
            epoch, k = self.clock.at(step)
            totals = self.step(step, timer)
            self.timeline.step(step, timer)
            self.samples_in_epoch = (0.0 if k == 0 else self.samples_in_epoch) + totals.count
            last = step + 1
            seconds = time.perf_counter() - began
            self.watchdog.step_took(seconds)
            self.records.step(step, epoch, totals, timer.times, self.lr.at(step), seconds,
                              force_log=totals.stop, wait=self.sync.wait)
            if totals.stop:  # every rank sees it at this same step: checkpoint it, stop
                self.stopped_at = last
                self.signals.ignore_further()
                self.stop_signal = self.signals.agree(self.comm)
                self.save_checkpoint(last)
                return
            if k + 1 == self.steps_per_epoch and self.val is not None:
                self.watchdog.at(step, "validation")
                self.validate(epoch, step)
            if self.checkpoint_due(last):
                self.save_checkpoint(last)
        if last > self.first_step:
            self.save_checkpoint(last)  # the end (a no-op if that step was just saved)

    def step(self, step: int, timer: StepTimer):
        """One step: every rank's gradient sum, one allreduce, the same update everywhere."""
        sync, watch = self.sync, self.watchdog
        timer.start()
        if self.cfg.reproducible:
            sync.reduce_step(step, self.engine, self.signals.requested, timer, watch)
            return self.update(step, timer)
        watch.at(step, "data")
        X, y = self.batches(step)
        timer.lap("data")
        watch.at(step, "compute")
        stop = self.signals.requested
        if sync.overlap is not None:
            sync.reduce_overlapped(step, self.model, self.engine.params_host(), X, y, stop,
                                   timer)
        else:
            loss, correct = self.engine.loss_grad(X, y, None if self.grad_on_gpu
                                                  else sync.local)
            sync.record(step, len(X), loss, correct, stop)
            timer.lap("compute")
            watch.at(step, "allreduce")
            sync.reduce()
            timer.lap("allreduce")
        return self.update(step, timer)

    def update(self, step: int, timer: StepTimer):
        """The verdict on the reduced buffer and the same update on every rank."""
        totals = self.sync.totals()  # the same bits on every rank: the same verdict
        if not totals.finite or (self.grad_on_gpu and not self.engine.grad_finite):
            kept = os.path.join(self.out, "checkpoints") if self.out else "memory"
            raise RunFailed(f"non-finite loss or gradient at step {step + 1}; stopping. The "
                            f"last good checkpoint in {kept} is kept.")
        self.watchdog.at(step, "update")
        if totals.count > 0:
            self.engine.step(None if self.grad_on_gpu else self.sync.grad,
                             1.0 / totals.count, self.lr.at(step))
        timer.lap("update")
        return totals

    def validate(self, epoch: int, step: int) -> None:
        """Loss and accuracy on the val split: each rank its rows, one reduction."""
        began = time.perf_counter()
        self.faults.validating(step + 1)
        Xv, yv = self.val
        params = self.engine.params_host()
        if self.cfg.reproducible:
            sums = exact_validation(self.model, params, Xv, yv, self.cfg.micro_batch, self.comm)
        else:
            loss, correct = self.model.evaluate(params, Xv, yv)
            sums = np.array([loss, correct, len(yv)], dtype=np.float64)
            self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        seconds = time.perf_counter() - began
        self.records.validation(epoch, step, sums, seconds)
        self.timeline.mark("validation", step, began, seconds)

    # --- checkpoints and the summary --------------------------------------------------------

    def checkpoint_due(self, steps_done: int) -> bool:
        """Every --checkpoint-every steps, and every --checkpoint-every-s seconds. Only rank 0
        writes checkpoints, so only its clock decides: no agreement is needed."""
        every, every_s = self.cfg.checkpoint_every, self.cfg.checkpoint_every_s
        by_time = self.is_root and every_s > 0 and time.monotonic() - self.saved_at >= every_s
        return by_time or (bool(every) and steps_done % every == 0)

    def save_checkpoint(self, step: int) -> None:
        if not self.is_root or not self.out or step == self.saved_step:
            return
        self.watchdog.at(step - 1, "checkpoint")
        began = time.perf_counter()
        self.faults.saving(step)
        self.saved_at, self.saved_step = time.monotonic(), step
        epoch, k = self.clock.at(step)
        rng = {"seed": self.cfg.seed, "shuffle": self.cfg.shuffle, "epoch": epoch,
               "step_in_epoch": k, "scheme": "numpy default_rng([seed, epoch(, rank)])",
               "samples_in_epoch": self.samples_in_epoch if k else 0.0,
               "global_batch": self.global_batch, "steps_per_epoch": self.steps_per_epoch,
               "ranks": self.size}
        if self.cfg.reproducible:  # the next step's fixed-point scale, so a resume keeps bits
            rng["exact_exponent"] = self.sync.exponent
        ckpt.save(self.out, self.model, self.engine.params_host(),
                  self.engine.optimizer_state(), step, epoch, k, rng, config_record(self.cfg))
        if self.cfg.keep_checkpoints:
            ckpt.prune(self.out, self.cfg.keep_checkpoints)
        self.timeline.mark("checkpoint", step - 1, began, time.perf_counter() - began)

    def summarize(self) -> dict | None:
        cfg = self.cfg
        facts = {
            "algorithm": cfg.allreduce, "device": self.device,
            "gpu": getattr(self.engine, "facts", None),  # None on the CPU
            "bucket_mb": cfg.bucket_mb if self.sync.overlap is not None else 0,
            "shuffle": cfg.shuffle, "model": self.model.spec(),
            "parameters": self.model.n_params,
            "dataset": os.path.abspath(cfg.data) if cfg.data else None,
            "mpi_library": mpi_library(),
            "stopped_at_step": self.stopped_at,
            "stop_signal": self.stop_signal,
            "restarts": settings.get("HPCTRAIN_RESTART"),
            "slurm": slurm_job(),  # None outside a SLURM job
        }
        if self.sync.facts:
            facts["step_reduction"] = self.sync.facts
        if cfg.allreduce == "auto":
            facts["auto_choices"] = auto.choices()
        if cfg.reproducible:
            facts["reproducible"] = {"micro_batch": cfg.micro_batch,
                                     "resummed_steps": self.sync.resummed}
        return self.records.summary(self.global_batch, facts)

