"""Which input rows go to train, val and test: a seeded random sample, fixed before writing.

The plan depends only on the row count, the two fractions and the seed, never on the shard
count, so the same input and seed always give the same splits. It is one byte per row, which
keeps streaming imports cheap (the rows themselves are never held in memory).
"""

import numpy as np

from ..errors import InputError

# Codes in the plan, in the order rows are routed.
SPLIT_CODES = (("train", 0), ("val", 1), ("test", 2))
# A separate random stream for the split choice, so it never collides with synthetic data.
_SPLIT_STREAM = 0x5B117


def split_rows(n: int, fraction: float) -> int:
    """round(fraction * n), but at least one row when the fraction is positive."""
    return 0 if fraction <= 0 else max(1, round(fraction * n))


def plan_splits(n: int, val_fraction: float, test_fraction: float, seed: int, path=None):
    """Return (plan, rows): plan is None (all rows train) or an int8 code per row.

    Val and test are exact-size random samples without replacement: the first n_val indices
    drawn by numpy.random.default_rng([seed, stream]).choice(n, n_val + n_test,
    replace=False) go to val, the rest to test. Within each split, rows keep input order.
    """
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}", path=path)
    for name, f in (("val", val_fraction), ("test", test_fraction)):
        if not 0 <= f < 1:
            raise InputError(f"--{name}-fraction must be in [0, 1), got {f}", path=path)
    n_val, n_test = split_rows(n, val_fraction), split_rows(n, test_fraction)
    n_train = n - n_val - n_test
    if n_train < 1:
        raise InputError(f"{n} rows leave no training rows after {n_val} val and "
                         f"{n_test} test rows", path=path)
    rows = {"train": n_train, "val": n_val, "test": n_test}
    if n_val + n_test == 0:
        return None, rows
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    chosen = rng.choice(n, n_val + n_test, replace=False)
    plan = np.zeros(n, dtype=np.int8)
    plan[chosen[:n_val]] = 1
    plan[chosen[n_val:]] = 2
    return plan, rows
