"""`hpctrain evaluate`: per-class confusion matrix, precision, recall and F1 for classification,
R² for regression, the same on 1 and 3 ranks (real mpiexec) and equal to scikit-learn's over
the model's predictions of the whole split."""

import json

import numpy as np
import pytest
from helpers import check, run_cli, run_mpi
from test_predict_dataset import expected, trained

metrics = pytest.importorskip("sklearn.metrics")
TIMEOUT = 120


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate-metrics")
    return {c: trained(root, c) for c in (2, 4, 0)}


def evaluated(ranks, data, checkpoint):
    args = ["evaluate", "--data", data, "--checkpoint", checkpoint, "--json"]
    proc = check(run_mpi(ranks, args, timeout=TIMEOUT) if ranks > 1
                 else run_cli(args, timeout=TIMEOUT))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def labels(data, split="test"):
    from hpctrain.data import open_dataset

    dataset = open_dataset(data)
    return dataset.read(split, 0, dataset.rows(split))[1]


@pytest.mark.parametrize("classes", [2, 4])
def test_per_class_metrics_equal_scikit_learn_on_any_rank_count(models, classes):
    data, checkpoint = models[classes]
    p = expected(data, checkpoint)
    predicted = (p > 0.5).astype(int) if classes == 2 else p.argmax(axis=1)
    y = labels(data)
    ks = list(range(classes))
    one, three = evaluated(1, data, checkpoint), evaluated(3, data, checkpoint)
    for result in (one, three):
        assert result["confusion"] == metrics.confusion_matrix(y, predicted, labels=ks).tolist()
        precision, recall, f1, support = metrics.precision_recall_fscore_support(
            y, predicted, labels=ks, zero_division=np.nan)
        for k, c in enumerate(result["classes"]):
            assert c["class"] == k and c["support"] == support[k]
            for key, want in (("precision", precision), ("recall", recall), ("f1", f1)):
                if np.isnan(want[k]):
                    assert c[key] is None
                else:
                    assert c[key] == pytest.approx(want[k], rel=1e-12)
        assert np.trace(result["confusion"]) / len(y) == pytest.approx(result["accuracy"])
    assert one["confusion"] == three["confusion"]
    assert one["macro_f1"] == pytest.approx(three["macro_f1"], rel=1e-12)


def test_r2_for_regression_on_any_rank_count(models):
    data, checkpoint = models[0]
    want = metrics.r2_score(labels(data).astype(np.float64),
                            expected(data, checkpoint).astype(np.float64))
    for ranks in (1, 3):
        result = evaluated(ranks, data, checkpoint)
        assert result["r2"] == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert "confusion" not in result and result["accuracy"] is None


def test_the_text_report_shows_the_table_and_the_matrix(models):
    data, checkpoint = models[4]
    proc = check(run_mpi(2, ["evaluate", "--data", data, "--checkpoint", checkpoint],
                         timeout=TIMEOUT))
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("test: 690 rows  loss ")
    assert lines[1].split() == ["class", "precision", "recall", "f1", "support"]
    assert [line.split()[0] for line in lines[2:7]] == ["0", "1", "2", "3", "macro"]
    assert "confusion" in lines[7] and len(lines) == 12
    regression = check(run_cli(["evaluate", "--data", models[0][0], "--checkpoint",
                                models[0][1]], timeout=TIMEOUT))
    assert regression.stdout.strip().splitlines()[1].startswith("  R² ")
