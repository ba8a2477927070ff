"""Scaling points as text: scaling.csv (every number, for other tools) and scaling.md (read).

A failed point stays a row: empty numbers, and a status that says why. A layout sweep's
(--layouts) tables have a layout ("8x2") and a threads column, and scaling.md ends with the
best layout (scaling_layouts.best_layout_line, written last by report.write_outputs).
"""

import csv

from ..metrics import PHASES
from .scaling_points import batch_warning

CSV_FIELDS = ("mode", "ranks", "algorithm", "device", "repeats", "failed", "samples_per_s",
              "samples_per_s_min", "samples_per_s_max", "speedup", "efficiency",
              "comm_fraction", "step_time_s", "data_s", "compute_s", "allreduce_s", "update_s",
              "global_batch", "local_batch", "status")
LAYOUT_CSV_FIELDS = ("mode", "layout", "ranks", "threads", *CSV_FIELDS[2:])


def is_layout_sweep(points) -> bool:
    return any(p.threads is not None for p in points)


def csv_row(point, mode: str, fields=None) -> dict:
    if fields is None:
        fields = CSV_FIELDS if point.threads is None else LAYOUT_CSV_FIELDS
    row = {name: getattr(point, name, None) for name in fields}
    row["mode"], row["status"] = mode, point.status
    for ph in PHASES:
        row[f"{ph}_s"] = point.phases.get(ph)
    return {k: ("" if v is None else v) for k, v in row.items()}


def write_csv(points, mode, path) -> None:
    fields = LAYOUT_CSV_FIELDS if is_layout_sweep(points) else CSV_FIELDS
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for p in points:
            writer.writerow(csv_row(p, mode, fields))


def _fmt(value, spec, scale=1.0) -> str:
    return "—" if value is None else format(value * scale, spec)


def markdown_table(points, mode) -> str:
    layouts = is_layout_sweep(points)
    head = ("| layout | ranks | threads | algorithm | samples/s | speedup | " if layouts else
            "| ranks | algorithm | samples/s | speedup | efficiency | ")
    head += ("comm fraction | step ms | data ms | compute ms | allreduce ms | update ms | "
             "status |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for p in points:
        ranks = str(p.ranks if p.ranks is not None else "?")
        cells = ([p.layout or "?", ranks, str(p.threads or "?")] if layouts else [ranks])
        cells += [p.algorithm, _fmt(p.samples_per_s, ",.0f"), _fmt(p.speedup, ".2f")]
        if not layouts:
            cells.append(_fmt(p.efficiency, ".0%"))
        cells += [_fmt(p.comm_fraction, ".0%"), _fmt(p.step_time_s, ".2f", 1e3)]
        cells += [_fmt(p.phases.get(ph), ".2f", 1e3) for ph in PHASES]
        cells.append(p.status.replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_report(points, mode, runs, command=None) -> str:
    """The table with what it measured: mode, batches, device, MPI library, hosts, command."""
    title = (f"Ranks x threads layouts ({mode} scaling)" if is_layout_sweep(points) else
             f"{mode.capitalize()} scaling")
    parts = [f"# {title}\n"]
    if command:
        parts.append(f"Command: `{command}`\n")
    parts.append(describe(points, mode, runs) + "\n")
    parts.append(markdown_table(points, mode))
    parts.append("\n" + speedup_note(points) +
                 " Times are milliseconds per step, the slowest rank's, median of the repeats; "
                 "comm fraction is the share of the step spent in the allreduce.\n")
    warning = batch_warning(points, mode)
    if warning:
        parts.append(f"\n{warning}\n")
    return "\n".join(parts)


def speedup_note(points) -> str:
    if is_layout_sweep(points):
        return ("speedup = samples/s(layout) / samples/s of the algorithm's layout with the "
                "fewest threads per rank (one rank per core); every layout uses the same "
                "cores and the same global batch, so samples/s compares them directly.")
    if any(p.ranks == 1 and p.samples_per_s for p in points):
        base = ("samples/s(1) is the median of all one-rank runs (one rank does not "
                "communicate, whatever the algorithm)")
        formula = "speedup = samples/s(p) / samples/s(1)"
    else:
        base = "p0 is the algorithm's smallest rank count"
        formula = "speedup = p0 · samples/s(p) / samples/s(p0)"
    return f"{formula}, where {base}; efficiency = speedup / p (ideal 100%)."


def describe(points, mode, runs) -> str:
    good = [r.summary for r in runs if r.ok]
    batches = ("global batch " + _distinct(p.global_batch for p in points if p.samples_per_s)
               if mode == "strong" else
               "local batch " + _distinct(p.local_batch for p in points if p.samples_per_s))
    facts = [f"{mode} scaling ({batches})",
             "device " + _distinct(s.get("device") for s in good),
             "steps " + _distinct(s.get("steps") for s in good),
             "MPI " + _distinct(_first_line(s.get("mpi_library")) for s in good),
             "hosts " + _distinct(",".join(s.get("hosts") or []) or None for s in good)]
    return "; ".join(facts) + "."


def _distinct(values) -> str:
    seen = []
    for v in values:
        if v is not None and v not in seen:
            seen.append(v)
    return "/".join(map(str, seen)) if seen else "?"


def _first_line(text):
    """The first line of a library banner, its runs of spaces squeezed."""
    if not isinstance(text, str) or not text.strip():
        return None
    return " ".join(text.strip().splitlines()[0].split())
