"""Draw a `hpctrain train --trace FILE` timeline as a PNG with matplotlib: one row per rank,
the step phases in colour, validations and checkpoints hatched. A picture of the same JSON
that Perfetto or chrome://tracing opens, for documents; not a viewer.

    python benchmarks/trace_timeline.py TRACE.json OUT.png [--title TEXT]
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

COLOURS = {"data": "#4e79a7", "compute": "#f28e2b", "allreduce": "#e15759",
           "update": "#76b7b2", "validation": "#59a14f", "checkpoint": "#b07aa1"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("out")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    with open(args.trace) as f:
        events = json.load(f)["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X" and e["cat"] != "step"]
    zero = min(e["ts"] for e in slices)
    fig, ax = plt.subplots(figsize=(12, 0.6 + 0.55 * len(names)))
    for e in slices:
        colour = COLOURS.get(e["name"], "#bab0ac")
        hatch = "//" if e["cat"] in ("validation", "checkpoint") else None
        ax.broken_barh([((e["ts"] - zero) / 1e3, e["dur"] / 1e3)], (e["tid"] - 0.4, 0.8),
                       facecolors=colour, edgecolor="black" if hatch else colour,
                       linewidth=0.3, hatch=hatch)
    ax.set_yticks(sorted(names), [names[t] for t in sorted(names)])
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds from the first slice shown")
    ax.set_title(args.title or args.trace)
    ax.legend(handles=[Patch(color=c, label=n) for n, c in COLOURS.items()],
              loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(names) < 6 else -0.12),
              ncol=len(COLOURS), frameon=False)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)


if __name__ == "__main__":
    main()
