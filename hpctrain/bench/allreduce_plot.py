"""The allreduce benchmark's figures: bus bandwidth against message size, one line per algorithm.

`plot_busbw` draws one run (one rank count); `plot_study` draws a CSV of several runs, one
panel per rank count: `python -m hpctrain.bench.allreduce_plot RESULTS.csv STUDY.png`.
matplotlib is an optional dependency (the `bench` extra): it is imported here, lazily, and
its absence is reported by returning False rather than failing the benchmark.
"""

import sys


def plot_busbw(rows, path) -> bool:
    """One run's figure to `path`; False when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_panel(ax, rows)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_study(rows, path) -> bool:
    """One panel per rank count, side by side, to `path`; False when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    ranks = sorted({int(row["ranks"]) for row in rows})
    columns = min(len(ranks), 2)
    lines = -(-len(ranks) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(6.5 * columns, 4.2 * lines),
                             squeeze=False, sharey=True)
    for ax, p in zip(axes.flat, ranks, strict=False):  # spare panels are hidden below
        draw_panel(ax, [row for row in rows if int(row["ranks"]) == p])
    for ax in list(axes.flat)[len(ranks):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # no display on compute nodes
    import matplotlib.pyplot as plt

    return plt


def draw_panel(ax, rows) -> None:
    sizes = sorted({int(row["size_bytes"]) for row in rows})
    for name, points in by_algorithm(rows).items():
        ax.plot([int(r["size_bytes"]) for r in points], [float(r["busbw_GBps"]) for r in points],
                marker="o", label=name)
    first = rows[0]
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [human_size(s) for s in sizes], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_title(f"allreduce, {first['ranks']} ranks, {first['dtype']}\n{first['mpi']}",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()


def by_algorithm(rows) -> dict:
    """algorithm -> its rows sorted by size, algorithms in first-seen order."""
    groups = {}
    for row in rows:
        groups.setdefault(row["algorithm"], []).append(row)
    return {name: sorted(points, key=lambda r: int(r["size_bytes"]))
            for name, points in groups.items()}


def human_size(size: int) -> str:
    """4096 -> '4K', 1048576 -> '1M', 12 -> '12'."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def main(argv) -> int:
    import csv

    if len(argv) != 2:
        print("usage: python -m hpctrain.bench.allreduce_plot RESULTS.csv STUDY.png",
              file=sys.stderr)
        return 2
    with open(argv[0], newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        print(f"hpctrain: error: {argv[0]}: no rows", file=sys.stderr)
        return 2
    if not plot_study(rows, argv[1]):
        print("hpctrain: error: matplotlib is not installed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
