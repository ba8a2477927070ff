"""Bad allreduce buffers and names: a clear error on every rank, and no rank left waiting.

Every launch has a timeout: a hang fails the test instead of stalling the suite.
"""

import os
import re

import pytest
from helpers import REPO, child_env, run_mpi_script

WORKER = os.path.join(REPO, "tests", "mpi", "comm_errors.py")
RANKS = 3

EXPECTED = {
    "not-contiguous": "rank 2: allreduce buffer is not C-contiguous",
    "read-only": "rank 2: allreduce buffer is read-only",
    "int-dtype": "rank 0: allreduce buffer has dtype int32; only float32 and float64",
    "byte-order": "rank 2: allreduce buffer has non-native byte order",
    "not-array": "rank 2: allreduce buffer is not a NumPy array",
    "dtype-mismatch": "dtypes differ across ranks: rank 0 has float32, rank 2 has float64",
    "length-mismatch": "lengths differ across ranks: rank 0 has 10 elements, rank 2 has 11",
}


def lines_for(stdout: str, prefix: str) -> dict:
    """rank -> message, for lines `rank R: PREFIX: message`."""
    found = {}
    for match in re.finditer(rf"^rank (\d+): {re.escape(prefix)}: (.*)$", stdout, re.M):
        found[int(match.group(1))] = match.group(2)
    return found


def test_bad_first_call_raises_on_every_rank_and_exits_2():
    proc = run_mpi_script(RANKS, WORKER, ["first-call"], timeout=120)
    report = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 2, report
    assert "NOT RAISED" not in proc.stdout, report
    for name in ("auto", "doubling", "native", "ring", "shm", "tree"):
        for case, message in EXPECTED.items():
            seen = lines_for(proc.stdout, f"{name} {case}")
            assert sorted(seen) == list(range(RANKS)), f"{name} {case}\n{report}"
            assert all(message in text for text in seen.values()), f"{name} {case}\n{report}"
    unknown = lines_for(proc.stdout, "unknown")
    assert len(unknown) == RANKS, report
    assert all(text.endswith("(known: auto, doubling, native, ring, shm)")
               for text in unknown.values()), report
    # after the errors the ranks are still in step: a good allreduce sums 1 + 2 + 3
    assert len(re.findall(r"^rank \d+: after errors sum 6$", proc.stdout, re.M)) == RANKS, report
    # the collective error is printed once, by rank 0, as the CLI does
    assert proc.stderr.count("hpctrain: error:") == 1, report


def test_buffer_turning_bad_on_one_rank_later_aborts_the_job():
    proc = run_mpi_script(RANKS, WORKER, ["later-read-only"], timeout=120)
    report = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 2, report  # MPI Abort with the bad-input status
    assert proc.stderr.count("rank 1: allreduce buffer is read-only") == 1, report
    assert "NOT RAISED" not in proc.stdout, report


def test_debug_mode_catches_a_later_length_mismatch_on_every_rank():
    env = child_env(HPCTRAIN_ALLREDUCE_CHECK="always")
    proc = run_mpi_script(RANKS, WORKER, ["later-length"], timeout=120, env=env)
    report = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 2, report
    assert len(re.findall(r"^rank \d+: raised$", proc.stdout, re.M)) == RANKS, report
    assert "lengths differ across ranks: rank 0 has 10 elements, rank 2 has 11" in proc.stderr


@pytest.mark.parametrize("name", ["ring", "doubling", "shm"])
@pytest.mark.parametrize("n", [10, 4099])
def test_one_rank_switching_to_another_agreed_length_aborts_the_job(name, n):
    """No collective per call can see it: the algorithm sees it where the data meet."""
    proc = run_mpi_script(RANKS, WORKER, ["switch-length", name, n], timeout=60)
    report = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    # MPI_Abort(2); MPICH's process manager then SIGKILLs every rank, now and then the
    # aborting one too before its own exit: 9 is the same abort
    assert proc.returncode in (2, 9), report
    assert "NOT CAUGHT" not in proc.stdout, report
    assert re.search(r"^rank \d: allreduce buffer lengths differ across ranks", proc.stderr,
                     re.M), report
