"""Datasets under a real mpiexec: each rank reads its own rows; a broken dataset stops all."""

import os

from helpers import check, run_mpi_script

from hpctrain.data.synth import make_synthetic

WORKER = os.path.join(os.path.dirname(__file__), "mpi", "data_read_rank.py")


def test_three_ranks_read_their_own_rows_of_four_shards(tmp_path):
    make_synthetic(tmp_path / "ds", samples=101, features=5, classes=3, shards=4,
                   val_fraction=0.1, seed=2)
    proc = check(run_mpi_script(3, WORKER, [tmp_path / "ds"], timeout=120))
    assert "train 91 rows: 31 30 30" in proc.stdout
    assert "val 10 rows: 4 3 3" in proc.stdout


def test_broken_dataset_stops_every_rank_with_one_error(tmp_path):
    make_synthetic(tmp_path / "ds", samples=40, features=3, classes=2, shards=4)
    shard = tmp_path / "ds" / "train" / "shard-00002.h5"
    shard.unlink()
    proc = run_mpi_script(3, WORKER, [tmp_path / "ds"], timeout=120)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hpctrain: error")]
    assert errors == [f"hpctrain: error: rank 0: {shard}: missing shard (listed in manifest.json)"]
