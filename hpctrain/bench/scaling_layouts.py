"""`bench scaling --layouts`: ranks x threads per rank on one node, and which layout is best.

A layout RxT is R ranks of T threads each (`hpctrain train --threads T`) on R*T cores, the
launcher told to give each rank its own T cores. `--layouts 16` sweeps every way of writing
16 cores as R x T, T running over the divisors of 16 (16x1, 8x2, 4x4, 2x8, 1x16);
`--layouts 8x2,4x4` names the layouts, all on the same cores. A sweep is always strong
scaling: the same global batch in every layout, so each does the same work per step and
samples/s alone says which is fastest.

How each launcher gives a rank T cores (`--bind-args` overrides it, '' for none):
  Open MPI:        --map-by slot:PE=T   (T cores per rank, bound to them)
  MPICH (hydra):   -bind-to core:T      (what pip's MPICH 5 mpiexec accepts)
  srun:            --cpus-per-task T
Another mpiexec (not recognised by its --version) gets none and a note.

In the tables a layout's speedup is its samples/s over that of the algorithm's layout with
the fewest threads per rank (Nx1, one rank per core: what a plain `--ranks N` point is);
efficiency is left empty, since every layout uses the same cores.
"""

import os
import shlex
import subprocess

from ..config import MAX_THREADS
from ..errors import InputError
from ..launcher import find_mpiexec

BIND_ARGS = {"openmpi": "--map-by slot:PE={threads}", "hydra": "-bind-to core:{threads}",
             "srun": "--cpus-per-task {threads}"}


def layouts_of(cores: int) -> list:
    """Every (ranks, threads) with ranks * threads == cores, one thread per rank first."""
    return [(cores // t, t) for t in range(1, cores + 1) if cores % t == 0]


def parse_layouts(text: str) -> list:
    """`16` (every layout of 16 cores) or `8x2,4x4` (these, all on the same cores)."""
    text = text.strip().lower()
    if text.isdigit():
        cores = int(text)
        if not 1 <= cores <= MAX_THREADS:
            raise InputError(f"--layouts must be a core count from 1 to {MAX_THREADS}, "
                             f"got {text!r}")
        return layouts_of(cores)
    layouts = []
    for item in (v.strip() for v in text.split(",")):
        ranks, x, threads = item.partition("x")
        if not (x and ranks.isdigit() and threads.isdigit()
                and int(ranks) >= 1 and 1 <= int(threads) <= MAX_THREADS):
            raise InputError("--layouts must be a core count (16) or RANKSxTHREADS layouts "
                             f"(8x2,4x4), got {text!r}")
        layouts.append((int(ranks), int(threads)))
    cores = {r * t for r, t in layouts}
    if len(cores) > 1:
        raise InputError(f"--layouts {text}: every layout must use the same cores (ranks x "
                         f"threads), these use {', '.join(map(str, sorted(cores)))}")
    return sorted(set(layouts), key=lambda layout: layout[1])


def from_options(text, bind_template, mode, ranks_given, train_args) -> list | None:
    """The layouts `--layouts TEXT` asks for (None without it), checked against the other
    options before anything runs."""
    if text is None:
        if bind_template is not None:
            raise InputError("--bind-args is for --layouts")
        return None
    layouts = parse_layouts(text)
    check_options(mode, ranks_given, train_args)
    return layouts


def prepare(layouts, bind_template, launcher, echo) -> str:
    """The bind template to use, with a line saying what will run (and notes on stderr)."""
    template = resolve_bind_args(bind_template, launcher, echo)
    check_cores(layouts, echo)
    echo(f"layouts: {', '.join(f'{r}x{t}' for r, t in layouts)} (ranks x threads; "
         f"launcher arguments per rank: {template or 'none'})")
    return template


def check_options(mode, ranks_given, train_args) -> None:
    if mode != "strong":
        raise InputError("--layouts needs --mode strong (a fixed global batch, so every "
                         "layout does the same work per step)")
    if ranks_given:
        raise InputError("--layouts and --ranks exclude each other (a layout sets its ranks)")
    if any(a == "--threads" or a.startswith("--threads=") for a in train_args):
        raise InputError("--train-args must not set --threads with --layouts "
                         "(each layout sets its own)")


def mpi_flavour(program) -> str | None:
    """"openmpi" or "hydra" (MPICH's mpiexec), from `PROGRAM --version`; None otherwise."""
    try:
        proc = subprocess.run([program, "--version"], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stdout + proc.stderr
    if "Open MPI" in text or "OpenRTE" in text:
        return "openmpi"
    return "hydra" if "HYDRA" in text else None


def resolve_bind_args(template, launcher, echo) -> str:
    """The launcher arguments' template ({threads} in it): the given one, else the
    launcher's own (a note on stderr where the launcher is not recognised)."""
    if template is None:
        program = "srun" if launcher == "srun" else find_mpiexec()
        flavour = "srun" if launcher == "srun" else mpi_flavour(program)
        template = BIND_ARGS.get(flavour, "")
        if not template:
            echo(f"note: {program} is neither Open MPI's nor MPICH's mpiexec: ranks are not "
                 "given cores of their own (name the arguments with --bind-args)", err=True)
    try:
        bind_args(template, 1)
    except (KeyError, IndexError, ValueError) as err:
        raise InputError(f"--bind-args {template!r}: only {{threads}} may be filled in "
                         f"({type(err).__name__}: {err})") from None
    return template


def bind_args(template: str, threads: int) -> list:
    return shlex.split(template.format(threads=threads))


def check_cores(layouts, echo) -> None:
    """A note (not an error) when the layouts need more cores than this host lets us use."""
    cores = layouts[0][0] * layouts[0][1]
    have = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if have and cores > have:
        echo(f"note: the layouts use {cores} cores, this host has {have} for us: they will "
             "share cores (and a binding launcher may refuse)", err=True)


def layout_speedups(points) -> None:
    """speedup = samples/s over the algorithm's fewest-threads layout's; no efficiency."""
    by_alg: dict = {}
    for p in points:
        if p.samples_per_s and p.threads:
            by_alg.setdefault(p.algorithm, []).append(p)
    for group in by_alg.values():
        base = min(group, key=lambda p: p.threads)
        for p in group:
            p.speedup, p.efficiency = p.samples_per_s / base.samples_per_s, None


def best_layout_line(points) -> str:
    """`Best layout: 8x2 (8 ranks x 2 threads), 101,352 samples/s.`, per algorithm if several."""
    best: dict = {}
    for p in points:
        if p.samples_per_s and p.threads:
            if p.algorithm not in best or p.samples_per_s > best[p.algorithm].samples_per_s:
                best[p.algorithm] = p
    if not best:
        return "Best layout: none (no layout ran)."
    if len(best) == 1:
        (p,) = best.values()
        return (f"Best layout: {p.layout} ({_count(p.ranks, 'rank')} x "
                f"{_count(p.threads, 'thread')}), {p.samples_per_s:,.0f} samples/s.")
    parts = [f"{alg} {p.layout} ({p.samples_per_s:,.0f} samples/s)" for alg, p in best.items()]
    return "Best layout per algorithm: " + "; ".join(parts) + "."


def _count(n, noun) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
