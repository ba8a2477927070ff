"""`--reproducible`: the same bits for P = 1..5, every allreduce, uneven rows, a resume at
another rank count; without it the bits do differ (so these tests can fail); the fixed-point
sum's error bound; the combinations it refuses."""

import hashlib
import json
import os

import numpy as np
import pytest
from helpers import REPO, check, fails, run_cli, run_mpi, run_mpi_script
from train_util import checkpoints

from hpctrain import fixed_point as fp

WORKER = os.path.join(REPO, "tests", "mpi", "reproducible_fit.py")
ALGORITHMS = "ring,doubling,shm,native,auto"
TRAIN = ["--reproducible", "--global-batch", "48", "--shuffle", "global", "--micro-batch", "8",
         "--hidden", "12", "--lr", "0.01", "--log-every", "5", "--allreduce", "ring"]


def results(ranks, mode, algorithms=ALGORITHMS) -> dict:
    proc = check(run_mpi_script(ranks, WORKER, [mode, algorithms], timeout=300))
    found = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert sorted(found) == sorted(algorithms.split(",")), proc.stdout
    return found


def test_every_rank_count_and_algorithm_gives_the_same_bits():
    seen = {p: results(p, "on") for p in range(1, 6)}
    bits = {value for per_p in seen.values() for value in per_p.values()}
    assert len(bits) == 1, json.dumps(seen, indent=1)


def test_without_reproducible_the_bits_differ_across_rank_counts():
    """The guard of the test above: the same runs without the option do differ."""
    plain = {p: results(p, "off", "ring")["ring"] for p in (1, 3, 4)}
    assert len(set(plain.values())) > 1, plain


@pytest.fixture(scope="module")
def uneven(tmp_path_factory):
    """A dataset of 3 shards of uneven size with a val split (so val metrics are logged)."""
    root = tmp_path_factory.mktemp("uneven")
    data = str(root / "d")
    check(run_cli(["data", "synth", "--out", data, "--samples", "1111", "--features", "6",
                   "--classes", "3", "--shards", "3", "--val-fraction", "0.2"]))
    return data


def params_digest(run) -> str:
    from hpctrain import checkpoint as ckpt

    return hashlib.sha256(ckpt.load(checkpoints(run)[-1]).params.tobytes()).hexdigest()


def logged(run) -> list:
    """metrics.jsonl without the timings: what must not depend on P."""
    keep = ("step", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k in keep} for line in f]


def train(ranks, data, run, *flags):
    return check(run_mpi(ranks, ["train", "--data", data, "--out", run, *TRAIN, *flags],
                         timeout=300))


def test_the_cli_logs_the_same_losses_and_saves_the_same_bits_for_2_and_3_ranks(uneven,
                                                                                 tmp_path):
    runs = {p: str(tmp_path / f"p{p}") for p in (2, 3)}
    for p, run in runs.items():
        train(p, uneven, run, "--epochs", "2")
    assert params_digest(runs[2]) == params_digest(runs[3])
    lines = {p: logged(run) for p, run in runs.items()}
    assert any("val_loss" in line for line in lines[2]), lines[2]
    assert lines[2] == lines[3]


def test_a_resume_at_another_rank_count_gives_the_uninterrupted_bits(uneven, tmp_path):
    whole, parted = str(tmp_path / "whole"), str(tmp_path / "parted")
    train(2, uneven, whole, "--steps", "30")
    train(2, uneven, parted, "--steps", "17", "--checkpoint-every", "17")
    train(3, uneven, parted, "--steps", "30", "--resume")
    assert params_digest(whole) == params_digest(parted)
    # a logged loss is the mean over the lines' window: the first window after the resume
    # (steps 18-20) is shorter than the uninterrupted run's, so compare from the next one on
    tail = [line for line in logged(parted) if line["step"] > 20 or "val_loss" in line]
    assert tail and tail == [line for line in logged(whole)
                             if line["step"] > 20 or ("val_loss" in line and line["step"] > 17)]


@pytest.mark.parametrize("flags, words", [
    (["--reproducible", "--shuffle", "global"], "--global-batch G and --shuffle global"),
    (["--reproducible", "--global-batch", "32"], "--global-batch G and --shuffle global"),
    (["--reproducible", "--global-batch", "32", "--shuffle", "global", "--device", "cuda"],
     "CPU only"),
    (["--reproducible", "--global-batch", "32", "--shuffle", "global", "--bucket-mb", "1"],
     "--bucket-mb"),
    (["--reproducible", "--global-batch", "32", "--shuffle", "global", "--micro-batch", "0"],
     "--micro-batch"),
])
def test_what_cannot_be_reproducible_is_refused(uneven, tmp_path, flags, words):
    run = tmp_path / "r"
    fails(["train", "--data", uneven, "--out", run, *flags], words)
    assert not run.exists()


def fixed_sum(parts, bound, group=1):
    """The fixed-point sum of float32 vectors in the given order, `group` of them per pass
    (what a rank does with its micro-batches)."""
    s = fp.scale_exponent(bound, len(parts))
    acc = np.zeros(parts[0].size)
    for lo in range(0, len(parts), group):
        block = np.array(parts[lo:lo + group])
        fp.quantize_add(acc, block, len(block), 2.0 ** s, lo == 0)
    out = np.empty(parts[0].size, dtype=np.float32)
    assert fp.dequantize(acc, 2.0 ** -s, out)
    return acc, s, out


@pytest.mark.parametrize("count", [1, 7, 256, 1000])
def test_the_fixed_point_sum_is_exact_in_any_order_and_within_its_bound(count):
    rng = np.random.default_rng(count)
    # magnitudes over 30 binary orders, as a gradient's are, the largest near the bound
    parts = [(rng.standard_normal(501) * 2.0 ** rng.integers(-30, 0, 501)).astype(np.float32)
             for _ in range(count)]
    parts[0][0] = np.float32(2.0 ** 3 * 0.999)
    bound = fp.exponent(max(float(np.abs(p).max()) for p in parts))
    acc, s, _ = fixed_sum(parts, bound)
    for seed in range(3):  # any order, any grouping: the same integers
        shuffled = [parts[i] for i in np.random.default_rng(seed).permutation(count)]
        assert np.array_equal(fixed_sum(shuffled, bound, group=seed + 2)[0], acc)
    # every partial sum stayed an integer below 2^53: exact (checked with Python integers)
    exact = [sum(int(np.rint(float(p[i]) * 2.0 ** s)) for p in parts) for i in range(501)]
    assert [int(v) for v in acc] == exact
    assert max(abs(v) for v in exact) <= 2 ** 53
    # against the float64 sum: at most count * 2^-(s+1) per element before the float32 step
    reference = np.sum(np.array(parts, dtype=np.float64), axis=0)
    assert np.all(np.abs(acc * 2.0 ** -s - reference) <= count * 2.0 ** -(s + 1))


def test_a_gradient_that_outgrows_the_scale_is_summed_again_not_clipped(uneven, tmp_path):
    """A learning rate that makes the gradients grow fast: every step's sum still matches
    across rank counts (the overflow count made every rank sum the step again)."""
    runs = {p: str(tmp_path / f"p{p}") for p in (1, 3)}
    for p, run in runs.items():
        train(p, uneven, run, "--steps", "12", "--lr", "30", "--optimizer", "sgd")
    assert params_digest(runs[1]) == params_digest(runs[3])
    losses = [line["loss"] for line in logged(runs[1])]
    assert losses == [line["loss"] for line in logged(runs[3])]
    for run in runs.values():  # the first step, and at least one where the gradient grew
        with open(os.path.join(run, "summary.json")) as f:
            assert json.load(f)["reproducible"]["resummed_steps"] > 1


def test_fewer_micro_batches_than_ranks_is_warned_once(uneven, tmp_path):
    proc = check(run_mpi(3, ["train", "--data", uneven, "--out", tmp_path / "r", *TRAIN,
                             "--micro-batch", "32", "--steps", "2"], timeout=300))
    assert proc.stderr.count("2 micro-batches of 32 rows, so 1 of the 3 ranks have none") == 1
