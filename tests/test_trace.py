"""--trace FILE: a real 3-rank run's timeline, checked as trace-event JSON; its bad input."""

import json
import os

import pytest
from helpers import check, fails, run_cli, run_mpi
from train_util import make_data

from hpctrain.metrics import PHASES


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 480 training rows: 10 steps per epoch at a global batch of 48 (16 per rank)
    return make_data(tmp_path_factory.mktemp("trace") / "d", samples=600, val=0.2)


def events_of(path) -> list:
    with open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"]
    for event in events:
        assert {"ph", "ts", "pid", "tid", "name"} <= set(event), event
        assert event["ph"] in ("X", "M"), event
        if event["ph"] == "X":
            assert event["dur"] >= 0 and event["ts"] >= 0, event
    return events


def slices(events, cat, tid=None) -> list:
    return [e for e in events if e["ph"] == "X" and e.get("cat") == cat
            and (tid is None or e["tid"] == tid)]


def test_a_three_rank_trace_has_a_track_per_rank_and_the_window_of_steps(data, tmp_path):
    trace = tmp_path / "trace.json"
    check(run_mpi(3, ["train", "--data", data, "--out", tmp_path / "r", "--hidden", "8",
                      "--global-batch", "48", "--epochs", "2", "--allreduce", "ring",
                      "--checkpoint-every", "5", "--trace", trace, "--trace-steps", "3:12"],
                  timeout=240))
    events = events_of(trace)
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert sorted(names) == [0, 1, 2]
    assert all(names[r].startswith(f"rank {r} (") for r in names), names
    assert len({e["pid"] for e in events}) == 1  # one process, the ranks its threads
    for rank in range(3):
        steps = slices(events, "step", rank)
        assert [s["args"]["step"] for s in steps] == list(range(3, 13)), steps
        phases = slices(events, "phase", rank)
        assert len(phases) == 4 * len(steps)
        for step in steps:  # each step holds its four phases, in order
            inside = [p for p in phases if p["args"]["step"] == step["args"]["step"]]
            assert [p["name"] for p in inside] == list(PHASES)
            for p in inside:
                assert step["ts"] - 0.01 <= p["ts"]
                assert p["ts"] + p["dur"] <= step["ts"] + step["dur"] + 0.01
            ends = [p["ts"] + p["dur"] for p in inside[:-1]]
            assert all(end <= p["ts"] + 0.01 for end, p in zip(ends, inside[1:], strict=True))
        # the epoch ends after step 10: every rank validates; steps 5 and 10 checkpoint
        assert [v["args"]["step"] for v in slices(events, "validation", rank)] == [10]
        saved = [c["args"]["step"] for c in slices(events, "checkpoint", rank)]
        assert saved == ([5, 10] if rank == 0 else []), saved


def test_without_trace_steps_the_first_hundred_steps_are_kept(data, tmp_path):
    trace = tmp_path / "t.json"
    check(run_cli(["train", "--data", data, "--out", tmp_path / "r", "--hidden", "4",
                   "--batch-size", "8", "--steps", "130", "--allreduce", "ring",
                   "--log-every", "50", "--trace", trace], timeout=240))
    steps = [s["args"]["step"] for s in slices(events_of(trace), "step")]
    assert steps == list(range(1, 101))


@pytest.mark.parametrize("flags, words", [
    (["--trace", "{tmp}/nowhere/t.json"], ["--trace: no such directory", "nowhere"]),
    (["--trace", "{tmp}", "--trace-steps", "1:3"], ["--trace", "is a directory"]),
    (["--trace", "{tmp}/t.json", "--trace-steps", "9:3"], ["--trace-steps must be steps A:B"]),
    (["--trace", "{tmp}/t.json", "--trace-steps", "0:3"], ["--trace-steps must be steps A:B"]),
    (["--trace-steps", "1:5"], ["--trace-steps says which steps --trace FILE keeps"]),
])
def test_bad_trace_flags_exit_2_and_create_nothing(data, tmp_path, flags, words):
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    fails(["train", "--data", data, "--out", tmp_path / "r", "--steps", "2", *flags], *words)
    assert not (tmp_path / "r").exists() and not (tmp_path / "t.json").exists()
