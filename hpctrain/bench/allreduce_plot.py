"""The allreduce benchmark's figure: bus bandwidth against message size, one line per algorithm.

matplotlib is an optional dependency (the `bench` extra): it is imported here, lazily, and
its absence is reported by returning False rather than failing the benchmark.
"""


def plot_busbw(rows, path) -> bool:
    """Write the figure to `path`; False when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")  # no display on compute nodes
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in by_algorithm(rows).items():
        sizes = [row["size_bytes"] for row in points]
        ax.plot(sizes, [row["busbw_GBps"] for row in points], marker="o", label=name)
    first = rows[0]
    ax.set_xscale("log", base=2)
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_title(f"allreduce, {first['ranks']} ranks, {first['dtype']}\n{first['mpi']}",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def by_algorithm(rows) -> dict:
    """algorithm -> its rows sorted by size, algorithms in first-seen order."""
    groups = {}
    for row in rows:
        groups.setdefault(row["algorithm"], []).append(row)
    return {name: sorted(points, key=lambda r: r["size_bytes"]) for name, points in groups.items()}
