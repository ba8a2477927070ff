"""--tensorboard: the event files of a real 2-rank run, read back with TensorBoard's own
reader, hold metrics.jsonl's numbers; without the writer installed, one line and exit 2."""

import subprocess
import sys

import numpy as np
import pytest
from helpers import check, child_env, run_mpi
from train_util import make_data, metrics

from hpctrain.metrics import PHASES
from hpctrain.tensorboard_log import TRAIN_TAGS

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(folder) -> dict:
    """{tag: {step: value}} of every event file in `folder`, as TensorBoard reads them."""
    board = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0})
    board.Reload()
    return {tag: {e.step: e.value for e in board.Scalars(tag)}
            for tag in board.Tags()["scalars"]}


def expected(run) -> dict:
    """metrics.jsonl as {tag: {step: value}}, under the tags tensorboard_log promises."""
    found = {}
    for record in metrics(run):
        for key, tag in TRAIN_TAGS.items():
            if key in record:
                found.setdefault(tag, {})[record["step"]] = record[key]
        for phase, stats in record.get("time", {}).items():
            for stat in ("mean", "max"):
                found.setdefault(f"time/{phase}_{stat}", {})[record["step"]] = stats[stat]
    return found


def test_event_files_hold_the_metrics_log(tmp_path):
    data = make_data(tmp_path / "d", samples=600, val=0.2)
    run = tmp_path / "r"
    check(run_mpi(2, ["train", "--data", data, "--out", run, "--hidden", "8",
                      "--global-batch", "32", "--epochs", "2", "--log-every", "5",
                      "--allreduce", "ring", "--tensorboard"], timeout=240))
    written, logged = scalars(run / "tensorboard"), expected(run)
    assert {"train/loss", "train/samples_per_s", "val/accuracy"} <= set(written)
    assert {f"time/{p}_max" for p in PHASES} <= set(written)
    assert set(written) == set(logged)
    for tag, by_step in logged.items():
        assert sorted(written[tag]) == sorted(by_step), tag
        # event files hold float32: equal to the log's value rounded to float32
        for step, value in by_step.items():
            assert written[tag][step] == np.float32(value), (tag, step)
    assert sorted(logged["val/loss"]) == [15, 30]


def test_without_the_writer_installed_it_is_one_line_and_exit_2(tmp_path):
    data = make_data(tmp_path / "d", samples=100)
    # the import of tensorboardX fails as on a machine without the extra
    hide = ("import sys; sys.modules['tensorboardX'] = None; from hpctrain.cli import main; "
            "main()")
    proc = subprocess.run([sys.executable, "-c", hide, "train", "--data", data, "--out",
                           tmp_path / "r", "--steps", "2", "--tensorboard"],
                          capture_output=True, text=True, timeout=120, env=child_env())
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "pip install 'hpctrain[tensorboard]'" in proc.stderr
    assert not (tmp_path / "r").exists()
