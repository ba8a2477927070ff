"""`hpctrain bench allreduce`: time each allreduce algorithm per message size, nccl-tests style.

Run under `mpiexec -n P`. For every size and algorithm: check it once on fresh random values
(`hpctrain.comm.verify`: the float64 sum, identical bits on every rank) before timing
anything; then `--warmup` untimed calls and `--repeats` timed calls, timed like `auto` times
(`hpctrain.comm.timing`: a barrier before each call, the slowest rank's time, the median).
Columns (docs/PERFORMANCE.md explains them): time, algbw = bytes / time, busbw = algbw *
2(p-1)/p, and busbw relative to `native`, MPI's own Allreduce. Only rank 0 prints and writes
files; each CSV row and the header carry the run's provenance (`provenance`), and
`--reference FILE` checks the results against stored values for this machine (`reference`).

`shm-window`, the zero-copy shm of a training step, and `--tune`, which measures and caches
auto's choices instead of printing the table: allreduce_window.py.
"""

import os
import re

import click

from .. import runtime
from ..errors import EXIT_FAILED, InputError, RunFailed
from ..failures import abort_on_failure, collective_check
from ..world import mpi_library
from . import provenance, reference
from .allreduce_window import WINDOW, time_window, tune_sizes

DEFAULT_SIZES = "4K,64K,1M,8M,64M"
DEFAULT_ALGORITHMS = "ring,doubling,shm,shm-window,native,auto"
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
PLOT_FORMATS = (".png", ".pdf", ".svg")
RATIO_NOTE = ("# vs native: busbw / native's busbw at the same size, native being MPI's own "
              "Allreduce as MPI gives it, without hpctrain's one-NaN pass (> 1: faster than "
              "MPI; - when native did not run)")
CSV_COLUMNS = ("ranks", "dtype", "size_bytes", "count", "algorithm", "time_us", "algbw_GBps",
               "busbw_GBps", "busbw_vs_native", "repeats", "warmup", "mpi",
               *(f for f in provenance.FIELDS if f != "mpi_library"))


@click.command()
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True,
              help="Message sizes in bytes, comma-separated; K, M, G mean 2^10, 2^20, 2^30.")
@click.option("--algorithms", default=DEFAULT_ALGORITHMS, show_default=True,
              help="Registered allreduce algorithms, comma-separated (tree = doubling).")
@click.option("--repeats", default=20, show_default=True, type=click.IntRange(min=1),
              help="Timed calls per size and algorithm (the median is reported).")
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(min=0),
              help="Untimed calls before the timed ones.")
@click.option("--dtype", default="float32", show_default=True,
              type=click.Choice(["float32", "float64"]), help="Element type of the buffers.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False),
              help="Append one row per size and algorithm to this CSV file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Draw busbw against size (.png/.pdf/.svg; needs matplotlib).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--reference", "reference_path", type=click.Path(dir_okay=False),
              help="TOML/JSON of this machine's expected values (docs/PERFORMANCE.md, "
                   "'Reference values'): exit 1 when a result is worse than its tolerance.")
@click.option("--tune", is_flag=True,
              help="Instead of the table: measure auto's choice for each size (float32), for "
                   "a plain allreduce and for a training step's buffer, and cache it for this "
                   "machine and rank layout, so that jobs start with a warm cache.")
def allreduce(sizes, algorithms, repeats, warmup, dtype, csv_path, plot_path, seed,
              reference_path, tune):
    """Time the allreduce algorithms; run it under mpiexec -n P."""
    runtime.configure()
    from ..world import world

    facts = provenance.collect()  # before MPI starts: it runs git, and forks after MPI_Init
    comm = world()                # are what some MPI transports warn about
    facts["mpi_library"] = mpi_library()
    names, byte_sizes, refs = collective_check(
        comm, parse_request, comm.Get_rank(), sizes, algorithms, dtype, csv_path, plot_path,
        reference_path, facts["hostname"])
    if tune:
        with abort_on_failure(comm):
            tune_sizes(comm, byte_sizes)
        return
    with abort_on_failure(comm):
        rows = run_all(comm, names, byte_sizes, dtype, repeats, warmup, seed, facts)
    passed = True
    if comm.Get_rank() == 0:
        write_outputs(rows, csv_path, plot_path)
        if refs is not None:
            passed = reference.report(refs, [{**r, "size": r["size_bytes"]} for r in rows],
                                      click.echo)
    # every rank exits with rank 0's verdict, so the launcher's status is the same everywhere
    if not comm.bcast(passed, root=0):
        raise SystemExit(EXIT_FAILED)


def parse_request(rank, sizes, algorithms, dtype, csv_path, plot_path, reference_path=None,
                  hostname=""):
    """(algorithm names, sizes in bytes, references or None), or InputError naming the flag
    or file."""
    import numpy as np

    from ..comm import canonical_name

    # One row per algorithm, however it was named (`tree` is `doubling`).
    names = list(dict.fromkeys(name if name == WINDOW else canonical_name(name)
                               for name in split_list(algorithms, "--algorithms")))
    itemsize = np.dtype(dtype).itemsize
    byte_sizes = [parse_size(text, itemsize) for text in split_list(sizes, "--sizes")]
    refs = None
    if rank == 0:  # only rank 0 writes, so only its file system matters
        check_output_path(csv_path, (".csv", ".txt", ""))
        check_csv_columns(csv_path)
        check_output_path(plot_path, PLOT_FORMATS)
        if reference_path is not None:
            refs = reference.load(reference_path, "allreduce", hostname)
    return names, byte_sizes, refs


def split_list(text: str, flag: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError(f"{flag}: give at least one value")
    return list(dict.fromkeys(items))  # in the order given, without repeats


def byte_count(text: str) -> int | None:
    """'64K' -> 65536; None when the text is not a size."""
    match = re.fullmatch(r"(\d+)\s*([KMG]?)(I?B)?", text.strip().upper())
    return None if match is None else int(match.group(1)) * UNITS[match.group(2)]


def parse_size(text: str, itemsize: int) -> int:
    """'64K' -> 65536 bytes; a positive whole number of elements."""
    size = byte_count(text)
    if size is None:
        raise InputError(f"--sizes: cannot read {text!r} (use e.g. 4096, 64K, 1M)")
    if size <= 0 or size % itemsize:
        raise InputError(f"--sizes: {text} is not a positive multiple of {itemsize} bytes")
    return size


def check_output_path(path, suffixes) -> None:
    if path is None:
        return
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in suffixes:
        raise InputError(f"expected one of {', '.join(s or 'no suffix' for s in suffixes)}",
                         path=path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError("directory does not exist", path=parent)


def check_csv_columns(path) -> None:
    """Rows are appended: refuse a file whose header is not this version's columns."""
    if path is None or not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    with open(path, errors="replace") as f:
        first = f.readline().strip()
    if first != ",".join(CSV_COLUMNS):
        raise InputError("has other columns than this version writes (e.g. an older "
                         "hpctrain's, before provenance): give a new --csv file", path=path)


def run_all(comm, names, byte_sizes, dtype, repeats, warmup, seed, facts) -> list[dict]:
    """Check, then time, every (size, algorithm); rows as dicts (identical on every rank)."""
    from ..comm import get_allreduce, registry

    rows = []
    if comm.Get_rank() == 0:
        print(header(comm, dtype, repeats, warmup, facts), flush=True)
    for index, size in enumerate(byte_sizes):
        inputs = Inputs(comm, dtype, size, seed, index)
        for name in names:
            if name == WINDOW:
                seconds = time_window(comm, inputs, repeats, warmup)
                rows.append(make_row(comm.Get_size(), inputs, name, seconds, repeats, warmup,
                                     facts))
                continue
            # native is timed as MPI's own call, the baseline: without the one-NaN pass
            allreduce = registry.BASELINE if name == "native" else get_allreduce(name)
            check_result(comm, name, allreduce, inputs)
            seconds = time_calls(comm, allreduce, inputs, repeats, warmup)
            rows.append(make_row(comm.Get_size(), inputs, name, seconds, repeats, warmup,
                                 facts))
        add_ratios(rows, size)
        if comm.Get_rank() == 0:
            for row in rows:
                if row["size_bytes"] == size:
                    print(format_row(row), flush=True)
        del inputs
    return rows


class Inputs:
    """One size's random inputs on this rank (the check's own, see verify) and the buffer."""

    def __init__(self, comm, dtype, size: int, seed: int, index: int):
        import numpy as np

        from ..comm import verify

        self.dtype = np.dtype(dtype)
        self.count = size // self.dtype.itemsize
        self.seed, self.case = seed, index
        self.data = verify.inputs(comm.Get_rank(), self.count, self.dtype, seed, index)
        self.buf = np.empty_like(self.data)

    def reset(self) -> None:
        """The inputs again: repeated in-place sums would grow without bound."""
        self.buf[:] = self.data


def check_result(comm, name, fn, inputs: Inputs) -> None:
    """One call on fresh inputs, checked on every rank; RunFailed everywhere if wrong."""
    from ..comm import verify

    problem = verify.check(comm, fn, inputs.count, inputs.dtype, inputs.seed, inputs.case)
    if problem is not None:
        raise RunFailed(f"{name} {problem}")


def time_calls(comm, fn, inputs: Inputs, repeats: int, warmup: int) -> float:
    """Median over the timed calls of the slowest rank's time for the call, in seconds."""
    from ..comm import timing

    for _ in range(warmup):
        inputs.reset()
        fn(comm, inputs.buf)
    return timing.median_time(comm, lambda: fn(comm, inputs.buf), repeats, before=inputs.reset)


def make_row(p, inputs: Inputs, name, seconds, repeats, warmup, facts) -> dict:
    size = inputs.buf.nbytes
    algbw = size / seconds / 1e9
    return {
        "ranks": p, "dtype": inputs.buf.dtype.name, "size_bytes": size,
        "count": inputs.buf.size, "algorithm": name, "time_us": seconds * 1e6, "algbw_GBps": algbw,
        "busbw_GBps": algbw * bus_factor(p), "busbw_vs_native": None,
        "repeats": repeats, "warmup": warmup, "mpi": facts["mpi_library"],
        **{k: v for k, v in facts.items() if k != "mpi_library"},
    }


def bus_factor(p: int) -> float:
    """Bytes each rank's link carries per byte reduced, for a bandwidth-optimal allreduce."""
    return 2.0 * (p - 1) / p


def add_ratios(rows, size) -> None:
    """busbw / native's busbw at the same size, when native ran (ratios of times, so p=1 too)."""
    same = [row for row in rows if row["size_bytes"] == size]
    native = next((row for row in same if row["algorithm"] == "native"), None)
    if native is None:
        return
    for row in same:
        row["busbw_vs_native"] = native["time_us"] / row["time_us"]


def header(comm, dtype, repeats, warmup, facts) -> str:
    columns = (f"{'size(B)':>12} {'count':>11} {'algorithm':>10} {'time(us)':>11} "
               f"{'algbw(GB/s)':>12} {'busbw(GB/s)':>12} {'vs native':>10}")
    p = comm.Get_size()
    ranks = f"{p} rank" if p == 1 else f"{p} ranks"
    return (f"# allreduce, in place, {ranks}, {dtype}, {facts['mpi_library']}\n"
            f"# provenance: {provenance.describe(facts)}\n"
            f"# each: checked against a float64 sum, {warmup} warm-up calls, median of "
            f"{repeats} timed calls (slowest rank per call, barrier before each)\n"
            f"{RATIO_NOTE}\n"
            f"#{columns[1:]}")


def format_row(row) -> str:
    ratio = row["busbw_vs_native"]
    return (f"{row['size_bytes']:>12} {row['count']:>11} {row['algorithm']:>10} "
            f"{row['time_us']:>11.1f} {row['algbw_GBps']:>12.3f} {row['busbw_GBps']:>12.3f} "
            f"{'-' if ratio is None else f'{ratio:.2f}':>10}")


def write_outputs(rows, csv_path, plot_path) -> None:
    if csv_path:
        append_csv(rows, csv_path)
    if plot_path:
        from .allreduce_plot import plot_busbw

        if not plot_busbw(rows, plot_path):
            click.echo("hpctrain: warning: matplotlib is not installed; no plot written",
                       err=True)


def append_csv(rows, path) -> None:
    import csv

    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})


def _csv_value(value):
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value
