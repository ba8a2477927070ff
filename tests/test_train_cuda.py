"""`hpctrain train --device cuda`: the same training as the CPU path, also with several ranks
sharing one GPU (the host-staged allreduce). Runs under numba-cuda's simulator here and in CI
(tiny shapes); on a GPU machine, set HPCTRAIN_TEST_REAL_GPU=1 to use the real device."""

import importlib.util
import json
import os

import numpy as np
import pytest
from helpers import check, child_env, run_cli, run_mpi
from train_util import final_params, make_data, metrics

pytestmark = pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                                reason="needs numba-cuda (the 'cuda' extra)")


def cuda_env():
    if os.environ.get("HPCTRAIN_TEST_REAL_GPU"):
        return child_env()
    return child_env(NUMBA_ENABLE_CUDASIM=1)


@pytest.mark.parametrize("ranks,gpu_rows", [(1, "auto"), (2, "auto"), (1, "off"), (2, "off")])
def test_cuda_trains_like_the_cpu(tmp_path, ranks, gpu_rows):
    # 4 steps per epoch, 6 steps: the copy-ahead of the next batch (HPCTRAIN_GPU_ROWS=off)
    # crosses an epoch boundary; with the rows held on the GPU (auto) they are gathered there.
    data = make_data(tmp_path / "data", samples=60, features=5, classes=3, shards=2)
    flags = ["--hidden", "6", "--batch-size", str(16 // ranks), "--steps", "6",
             "--log-every", "1", "--shuffle", "global", "--global-batch", "16"]
    runs = {}
    for device in ("cpu", "cuda"):
        run = str(tmp_path / device)
        args = ["train", "--data", data, "--out", run, "--device", device, *flags]
        env = cuda_env() if device == "cuda" else child_env()
        env["HPCTRAIN_GPU_ROWS"] = gpu_rows
        proc = run_cli(args, env=env) if ranks == 1 else run_mpi(ranks, args, env=env)
        check(proc)
        runs[device] = run
    gpu = json.loads((tmp_path / "cuda" / "summary.json").read_text())["gpu"]
    assert gpu["rows_on_gpu"] == (gpu_rows == "auto")
    np.testing.assert_allclose(final_params(runs["cuda"]), final_params(runs["cpu"]),
                               atol=1e-5)
    cpu = [m["loss"] for m in metrics(runs["cpu"]) if "loss" in m]
    gpu = [m["loss"] for m in metrics(runs["cuda"]) if "loss" in m]
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5)


def test_cuda_without_a_gpu_is_bad_input(tmp_path):
    if os.environ.get("HPCTRAIN_TEST_REAL_GPU"):
        pytest.skip("a GPU is present")
    data = make_data(tmp_path / "data", samples=20, features=3)
    env = child_env()
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    proc = run_cli(["train", "--data", data, "--out", tmp_path / "run", "--device", "cuda"],
                   env=env)
    assert proc.returncode == 2, proc.stderr
    assert "--device cuda" in proc.stderr and not os.path.exists(tmp_path / "run")


def test_a_low_precision_needs_the_gpu(tmp_path):
    data = make_data(tmp_path / "data", samples=20, features=3)
    proc = run_cli(["train", "--data", data, "--out", tmp_path / "run", "--device", "cpu",
                    "--precision", "bf16"], env=child_env())
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--precision bf16" in lines[0] and "--device cuda" in lines[0]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_one_gpu_rank_stops_on_a_non_finite_step(tmp_path):
    """One rank keeps its gradient on the GPU: the verdict still stops the run, exit 1."""
    data = make_data(tmp_path / "data", samples=40, features=4)
    env = cuda_env()
    env["HPCTRAIN_FAULT"] = "nan@0:3"
    proc = run_cli(["train", "--data", data, "--out", tmp_path / "run", "--device", "cuda",
                    "--hidden", "4", "--batch-size", "8", "--steps", "6"], env=env)
    assert proc.returncode == 1, proc.stderr
    assert "non-finite loss or gradient at step 3" in proc.stderr
