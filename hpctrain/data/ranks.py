"""Which contiguous rows of a split belong to which rank (pure Python, no imports)."""


def rank_slice(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rows [start, stop) of n rows for `rank` of `size` ranks.

    Contiguous and balanced within one row: the first n % size ranks get one row more, so
    concatenating the slices of ranks 0..size-1 gives every row exactly once, in order.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in [0, {size}), got {rank}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def aligned_slice(n: int, rank: int, size: int, unit: int) -> tuple[int, int]:
    """Rows [start, stop) of n rows for `rank`, in whole chunks of `unit` rows (the last
    chunk may be short): the chunks are the same for every `size`, each on one rank."""
    chunks = -(-n // unit)
    first, last = rank_slice(chunks, rank, size)
    return min(first * unit, n), min(last * unit, n)
