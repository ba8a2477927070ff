"""The speedup panel of scaling.png labels its axis readably whatever the speedups are."""

import pytest

from hpctrain.bench.scaling_plot import draw_speedup
from hpctrain.bench.scaling_points import Point

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def labels_in_view(points):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw_speedup(ax, points, "strong")
    fig.canvas.draw()
    lo, hi = ax.get_ylim()
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels(which="both")
              if t.get_text() and lo <= t.get_position()[1] <= hi]
    plt.close(fig)
    return labels


def point(ranks, speedup):
    return Point(ranks, "ring", 1, 0, [], samples_per_s=1.0, speedup=speedup,
                 efficiency=speedup / ranks)


@pytest.mark.parametrize("ranks, speedups", [
    ((4,), (3.7,)),                 # one point near the ideal: a span well under an octave
    ((2, 4), (1.9, 3.1)),
    ((1, 16), (1.0, 0.013)),        # a collapse: three significant digits, not 0.0078125
])
def test_the_speedup_axis_has_short_labels_across_the_values(ranks, speedups):
    labels = labels_in_view([point(p, s) for p, s in zip(ranks, speedups, strict=True)])
    assert len(labels) >= 3, labels
    assert all(len(label) <= 6 for label in labels), labels
