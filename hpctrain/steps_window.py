"""`--trace-steps A:B`: which steps a trace keeps, as the user writes them (1-based, both
ends included, as the progress lines count). Plain Python: config.py checks it before NumPy,
Numba or MPI load."""

import re

DEFAULT_TRACE_STEPS = 100  # without --trace-steps: the first 100 steps of this start


def parse_window(text) -> tuple[int, int] | None:
    """'20:80' -> (20, 80); '5' -> (5, 5); None when it is not a window of steps A <= B,
    both >= 1."""
    if not isinstance(text, str):
        return None
    found = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*)?", text)
    if not found:
        return None
    first = int(found.group(1))
    last = int(found.group(2)) if found.group(2) is not None else first
    return (first, last) if 1 <= first <= last else None


def steps_kept(text: str | None, first_step: int) -> range:
    """The 0-based steps a trace records: --trace-steps A:B, or the first DEFAULT_TRACE_STEPS
    steps from `first_step` (where this start, perhaps a resume, begins)."""
    if text is None:
        return range(first_step, first_step + DEFAULT_TRACE_STEPS)
    first, last = parse_window(text)
    return range(first - 1, last)
