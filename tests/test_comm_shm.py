"""The shared-memory allreduce (`shm`), its node split, and the automatic chooser (`auto`).

The multi-rank cases run under a real mpiexec: one launch per rank count, each checking the
real layout and pretend multi-node layouts (HPCTRAIN_FAKE_NODES) inside; see
tests/mpi/shm_allreduce.py for what every launch checks. The worker prints what it verified
per layout (node sizes, number of cases, auto's choices) and the test checks those numbers.
"""

import os
import re

import numpy as np
import pytest
from helpers import check, child_env, run_mpi, run_mpi_script

from hpctrain.comm import auto, shm, topology
from hpctrain.errors import InputError

WORKER = os.path.join(os.path.dirname(__file__), "mpi", "shm_allreduce.py")

# ranks -> layouts ("real" or a HPCTRAIN_FAKE_NODES value), the node sizes to expect and
# optionally HPCTRAIN_SHM_CHUNK_BYTES (4096: 100_003 floats take 98 to 196 pipeline steps)
LAYOUTS = {
    1: ["real:1"],
    2: ["real:2:4096", "1+1:1,1"],
    3: ["real:3:4096", "1+1+1:1,1,1", "2,1:2,1"],
    4: ["real:4:4096", "2x2:2,2", "3+1:3,1"],
    5: ["real:5", "2+3:2,3"],
}


CANDIDATES = {"native", "ring", "doubling", "shm"}


def sizes_for(p):
    return sorted({0, 1, max(p - 1, 0), p + 1, 1001, 100_003})


def expected_cases(p):
    """The worker's cases per layout: the grid (shm and auto, two dtypes), 8 window-reuse
    calls, one on a freed duplicate and, with several ranks, auto's cached call."""
    return 2 * 2 * len(sizes_for(p)) + 8 + 1 + (1 if p > 1 else 0)


def expected_classes(p):
    """auto's size classes of the grid (an empty message picks nothing)."""
    return {auto.class_label(auto.size_class(n * itemsize))
            for n in sizes_for(p) if n for itemsize in (4, 8)}


@pytest.mark.parametrize("ranks", sorted(LAYOUTS))
def test_shm_and_auto_under_mpiexec(ranks, tmp_path):
    env = child_env(XDG_CACHE_HOME=tmp_path / "cache", HPCTRAIN_AUTO_BUDGET_S=0.02)
    env.pop(topology.FAKE_NODES_VAR, None)
    env.pop(shm.CHUNK_VAR, None)
    proc = check(run_mpi_script(ranks, WORKER, [ranks, *LAYOUTS[ranks]], timeout=120, env=env))
    lines = proc.stdout.strip().splitlines()
    report = proc.stdout
    assert len(lines) == len(LAYOUTS[ranks]) + 2, report
    for line, spec in zip(lines, LAYOUTS[ranks], strict=False):
        name, sizes = spec.split(":")[:2]
        match = re.fullmatch(rf"layout {re.escape(name)}: nodes (\S+) cases (\d+) auto (\S+)",
                             line)
        assert match, report
        assert match.group(1) == sizes, report
        assert int(match.group(2)) == expected_cases(ranks), report
        picked = dict(pair.split(":") for pair in match.group(3).split(","))
        assert set(picked) == expected_classes(ranks), report
        allowed = {"native"} if ranks == 1 else CANDIDATES
        assert set(picked.values()) <= allowed, report
    assert lines[-2] == f"bad settings: {topology.FAKE_NODES_VAR} {shm.CHUNK_VAR}", report
    assert lines[-1] == f"ok {expected_cases(ranks) * len(LAYOUTS[ranks])}", report


def test_bad_fake_nodes_stop_every_rank_with_one_line(tmp_path):
    env = child_env(XDG_CACHE_HOME=tmp_path, **{topology.FAKE_NODES_VAR: "3x2"})
    proc = run_mpi(2, ["bench", "allreduce", "--algorithms", "shm", "--sizes", "4K"],
                   timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hpctrain: error")]
    assert len(errors) == 1 and "HPCTRAIN_FAKE_NODES='3x2'" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("spec, size, sizes", [
    ("2x2", 4, [2, 2]), ("3,1", 4, [3, 1]), ("3+1", 4, [3, 1]), ("1+1+1", 3, [1, 1, 1]),
    (" 1X3 ", 3, [3]), ("", 4, None), ("  ", 4, None),
])
def test_fake_nodes_parse(spec, size, sizes, monkeypatch):
    monkeypatch.setenv(topology.FAKE_NODES_VAR, spec)
    assert topology.fake_node_sizes(size) == sizes


@pytest.mark.parametrize("spec, why", [
    ("3,3", "add up to 6, but the job has 4 ranks"), ("2x3", "add up to 6"),
    ("0,4", "at least one rank"), ("two", "expected NODESxRANKS"), ("4,", "expected NODESxRANKS"),
])
def test_fake_nodes_that_do_not_fit_the_job(spec, why, monkeypatch):
    monkeypatch.setenv(topology.FAKE_NODES_VAR, spec)
    with pytest.raises(InputError, match=f"{topology.FAKE_NODES_VAR}={spec!r}: .*{why}") as err:
        topology.fake_node_sizes(4)
    assert err.value.collective  # every rank fails alike: rank 0 alone reports it


@pytest.mark.parametrize("n, itemsize, parts", [
    (0, 4, 3), (1, 4, 3), (2, 8, 5), (1001, 4, 4), (100_003, 8, 7), (64, 4, 16)])
def test_slices_cover_the_buffer_once_on_cache_lines(n, itemsize, parts):
    slices = [shm.my_slice(n, itemsize, parts, k) for k in range(parts)]
    covered = np.concatenate([np.arange(lo, hi) for lo, hi in slices])
    assert np.array_equal(covered, np.arange(n))
    assert all(lo * itemsize % shm.ALIGN == 0 for lo, hi in slices if hi > lo)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_rows_adds_in_row_order(dtype):
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((5, 3 * shm.BLOCK + 17)).astype(dtype) * 1e3
    out = np.full(rows.shape[1], np.nan, dtype=dtype)
    lo, hi = 5, rows.shape[1] - 3
    shm.sum_rows(rows, out, lo, hi)
    expected = rows[0].copy()
    for row in rows[1:]:
        expected += row   # the same order, so the same bits
    assert np.array_equal(out[lo:hi], expected[lo:hi])
    assert np.isnan(out[:lo]).all() and np.isnan(out[hi:]).all()


@pytest.mark.parametrize("n, chunk", [(0, 16), (1, 16), (100, 16), (100, 1000), (1001, 48)])
def test_pipeline_pieces_cover_the_buffer_once(n, chunk):
    for parts in (1, 3, 4):
        for part in range(parts):
            found = shm.pieces(n, chunk, 4, parts, part)
            assert [start for start, *_ in found] == list(range(0, n, chunk))
            assert all(start <= lo <= hi <= stop for start, stop, lo, hi in found)
        mine = [np.arange(0)] + [np.arange(lo, hi) for part in range(parts)
                for _, _, lo, hi in shm.pieces(n, chunk, 4, parts, part)]
        assert np.array_equal(np.sort(np.concatenate(mine)), np.arange(n))


def test_chunk_setting(monkeypatch):
    monkeypatch.delenv(shm.CHUNK_VAR, raising=False)
    assert shm.chunk_bytes() == 0         # the pipeline lost where measured: off by default
    monkeypatch.setenv(shm.CHUNK_VAR, "1000")
    assert shm.chunk_bytes() == 1024      # asked for: on a cache line
    monkeypatch.setenv(shm.CHUNK_VAR, "-5")
    with pytest.raises(InputError, match=shm.CHUNK_VAR) as err:
        shm.chunk_bytes()
    assert err.value.collective


def test_size_classes():
    assert [auto.size_class(b) for b in (0, 1, 4096, 4097, 400_012, 1 << 20)] == [
        4096, 4096, 4096, 8192, 524_288, 1 << 20]
    assert [auto.class_label(s) for s in (4096, 524_288, 1 << 20, 1 << 30)] == [
        "<=4KiB", "<=512KiB", "<=1MiB", "<=1GiB"]


def test_cache_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert auto.cache_path() == str(tmp_path / "hpctrain" / "allreduce-auto.json")
