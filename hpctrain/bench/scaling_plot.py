"""scaling.png: speedup and efficiency against the ideal, and where each step's time goes.

Three panels, one line per allreduce algorithm:
  speedup vs ranks (log-log, dashed ideal speedup = p), efficiency vs ranks (ideal 100%),
  and a stacked bar per (ranks, algorithm) of milliseconds per step in data / compute /
  allreduce / update (the slowest rank's phase times).
A ranks x threads layout sweep (--layouts) has two: samples/s per layout (the best one
marked), one bar per algorithm, and the same stacked phase bars per (layout, algorithm).
matplotlib is an optional dependency (the `bench` extra): it is imported here, lazily, and
its absence is reported by returning False rather than failing the whole study.
"""

from ..metrics import PHASES

PHASE_COLOURS = {"data": "#8c8c8c", "compute": "#4c72b0", "allreduce": "#dd8452",
                 "update": "#55a868"}


def plot_scaling(points, mode: str, path) -> bool:
    """Write the figure to `path`; False when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")  # files only: never needs a display (cluster nodes have none)
    import matplotlib.pyplot as plt

    layouts = any(p.threads is not None for p in points)
    if layouts:
        fig, (ax_rate, ax_time) = plt.subplots(1, 2, figsize=(13, 4.8))
        draw_layout_rates(ax_rate, points)
    else:
        fig, (ax_speed, ax_eff, ax_time) = plt.subplots(
            1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.4]})
        good = [p for p in points if p.speedup is not None]
        draw_speedup(ax_speed, good, mode)
        draw_efficiency(ax_eff, good, mode)
    draw_phases(ax_time, [p for p in points if p.samples_per_s])
    failed = [p for p in points if p.failed]
    if failed:
        names = ", ".join(f"{p.layout or f'p={p.ranks}'} {p.algorithm}" for p in failed)
        fig.text(0.01, 0.01, f"failed points (see scaling.md): {names}", color="crimson",
                 fontsize=8)
    fig.tight_layout(rect=(0, 0.04 if failed else 0, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _by_algorithm(points) -> dict:
    groups: dict = {}
    for p in points:
        groups.setdefault(p.algorithm, []).append(p)
    return {alg: sorted(ps, key=lambda p: p.ranks) for alg, ps in groups.items()}


def _rank_axis(ax, ranks) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks)
    ax.set_xticklabels([str(r) for r in ranks])
    ax.set_xlabel("ranks")
    ax.grid(True, alpha=0.3)


def plain_numbers():
    """Tick labels 0.5, 1, 2, 4 rather than 2^-1, 2^0 ...: speedups read as plain factors,
    with three significant digits at most (0.00781, 1.05e+06, never 0.0078125)."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _pos: f"{value:.3g}")


def readable_log_ticks(ax, values) -> None:
    """Powers of two label a log axis only when the values span an octave or more; within a
    narrower span (speedups 1.1-1.6) put five labelled ticks across the values instead."""
    import numpy as np
    from matplotlib.ticker import NullFormatter

    values = [v for v in values if v and v > 0 and np.isfinite(v)]
    if not values or max(values) / min(values) >= 4:
        return
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo / 1.5, hi * 1.5
    ticks = sorted({float(f"{t:.2g}") for t in np.geomspace(lo, hi, 5)})
    ax.set_yticks(ticks)
    ax.yaxis.set_minor_formatter(NullFormatter())


def draw_speedup(ax, points, mode) -> None:
    ranks = sorted({p.ranks for p in points})
    if ranks:
        ax.plot(ranks, ranks, "k--", lw=1, label="ideal")
    for alg, ps in _by_algorithm(points).items():
        ax.plot([p.ranks for p in ps], [p.speedup for p in ps], "o-", label=alg)
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(plain_numbers())
    readable_log_ticks(ax, [*ranks, *(p.speedup for p in points)])
    ax.set_ylabel("speedup" if mode == "strong" else "scaled speedup")
    ax.set_title(f"{mode} scaling: speedup")
    _rank_axis(ax, ranks)
    ax.legend(fontsize=8)


def draw_efficiency(ax, points, mode) -> None:
    ranks = sorted({p.ranks for p in points})
    if ranks:
        ax.axhline(100, color="k", ls="--", lw=1, label="ideal")
    for alg, ps in _by_algorithm(points).items():
        ax.plot([p.ranks for p in ps], [100 * p.efficiency for p in ps], "o-", label=alg)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("efficiency (%)")
    ax.set_title(f"{mode} scaling: efficiency")
    _rank_axis(ax, ranks)
    ax.legend(fontsize=8)


def draw_layout_rates(ax, points) -> None:
    """samples/s per layout, one bar per algorithm side by side; the fastest marked."""
    layouts = list(dict.fromkeys(p.layout for p in points))
    groups = _by_algorithm(points)
    width = 0.8 / max(1, len(groups))
    best = max((p for p in points if p.samples_per_s), key=lambda p: p.samples_per_s,
               default=None)
    for i, (alg, ps) in enumerate(groups.items()):
        xs = [layouts.index(p.layout) + (i - (len(groups) - 1) / 2) * width for p in ps]
        ax.bar(xs, [p.samples_per_s or 0 for p in ps], width, label=alg)
        for x, p in zip(xs, ps, strict=True):
            if p is best:
                ax.annotate("best", (x, p.samples_per_s), ha="center", va="bottom",
                            fontsize=8)
    ax.set_xticks(range(len(layouts)))
    ax.set_xticklabels(layouts)
    ax.set_xlabel("ranks x threads per rank")
    ax.set_ylabel("samples/s")
    ax.set_title("ranks x threads layouts: throughput")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)


def draw_phases(ax, points) -> None:
    labels = [f"{p.layout or p.ranks}\n{p.algorithm}" for p in points]
    bottoms = [0.0] * len(points)
    for ph in PHASES:
        heights = [1e3 * (p.phases.get(ph) or 0.0) for p in points]
        ax.bar(range(len(points)), heights, bottom=bottoms, label=ph,
               color=PHASE_COLOURS[ph])
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_xlabel("layout / algorithm" if any(p.threads for p in points) else
                  "ranks / algorithm")
    ax.set_ylabel("ms per step (slowest rank)")
    ax.set_title("where each step's time goes")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
