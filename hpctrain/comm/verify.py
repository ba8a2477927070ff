"""Did an allreduce sum right? The one check shared by `hpctrain bench allreduce` and the tests.

`check(comm, allreduce, n, dtype, seed, case)`, collective: every rank fills a buffer with
fresh random values (`inputs`: uniform in [-1, 1), seeded by seed, rank and case), the
allreduce sums it in place, and then
- every rank must hold identical bits (rank 0's result is broadcast and compared bytewise);
- the result must match numpy.sum in float64 of every rank's input to within
  p * eps * sum(|inputs|) per element: a bound on the rounding of any order of summation,
  for float32 and for float64 alike.
It returns a description of the first problem, the same string on every rank, or None.

Rank 0 gathers the inputs in slices of GATHER_ELEMENTS, so the reference of a large message
never holds p full copies of it at once.
"""

import numpy as np

GATHER_ELEMENTS = 1 << 18


def inputs(rank: int, n: int, dtype, seed: int, case: int) -> np.ndarray:
    """This rank's inputs of one case: n values uniform in [-1, 1), as dtype."""
    rng = np.random.default_rng([seed, rank, case])
    return rng.uniform(-1.0, 1.0, n).astype(dtype)


def check(comm, allreduce, n: int, dtype, seed: int, case: int, shape=None) -> str | None:
    """Run allreduce(comm, buf) once on fresh inputs; None if right, else what went wrong.

    `shape` (of n elements) makes the buffer an array of that shape instead of 1-D.
    """
    data = inputs(comm.Get_rank(), n, np.dtype(dtype), seed, case)
    buf = data.copy().reshape(shape or (n,))
    allreduce(comm, buf)
    result = buf.reshape(-1)
    return uneven_bits(comm, result) or wrong_sums(comm, data, result)


def uneven_bits(comm, result: np.ndarray) -> str | None:
    """A description unless every rank holds the same bytes as rank 0 (collective)."""
    first = result.copy() if comm.Get_rank() == 0 else np.empty_like(result)
    comm.Bcast(first.view(np.uint8), root=0)
    same = np.array_equal(first.view(np.uint8), result.view(np.uint8))  # bits, NaNs included
    differing = [rank for rank, ok in enumerate(comm.allgather(same)) if not ok]
    if not differing:
        return None
    return (f"left different bits on different ranks at {result.nbytes} bytes "
            f"(rank {differing[0]} differs from rank 0)")


def wrong_sums(comm, data: np.ndarray, result: np.ndarray) -> str | None:
    """A description unless rank 0's result is the float64 sum of the inputs (collective)."""
    rank, p, n = comm.Get_rank(), comm.Get_size(), data.size
    eps = float(np.finfo(data.dtype).eps)
    first_bad, largest = None, 0.0
    for lo in range(0, n, GATHER_ELEMENTS):
        hi = min(lo + GATHER_ELEMENTS, n)
        table = np.empty((p, hi - lo), dtype=data.dtype) if rank == 0 else None
        comm.Gather(data[lo:hi], table, root=0)
        if rank != 0:
            continue
        wide = table.astype(np.float64)
        reference = np.sum(wide, axis=0)
        bound = p * eps * np.sum(np.abs(wide), axis=0)
        error = np.abs(result[lo:hi].astype(np.float64) - reference)
        over = ~(error <= bound)  # NaN counts as wrong
        largest = max(largest, float(np.max(error, initial=0.0)))
        if first_bad is None and over.any():
            i = int(np.argmax(over))
            first_bad = (lo + i, float(error[i]), float(bound[i]))
    problem = None
    if first_bad is not None:
        index, error, bound = first_bad
        problem = (f"gave wrong sums at {result.nbytes} bytes: element {index} is off by "
                   f"{error:.3g} (bound {bound:.3g}; largest error {largest:.3g})")
    # Once per check: the pickling bcast of a short string is fine here.
    return comm.bcast(problem, root=0)
