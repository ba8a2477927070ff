"""`--reference FILE`: a benchmark's results checked against stored values for this machine.

The peer is ReFrame's reference checks: per machine, per measured quantity, a value and a
tolerance; a result worse than value by more than the tolerance is a regression (exit 1, one
line each). A result better than that is only noted (the reference may be stale), and a
reference the run did not measure (other --ranks, --sizes) is counted as "not measured".

The file is TOML (.toml) or JSON (anything else), one table per machine:

    [machine.login1]
    hostname = ["login1", "cn*"]      # fnmatch patterns; default: the table's own name
    [[machine.login1.scaling]]        # `bench scaling`: select by mode, ranks, algorithm
    ranks = 4
    algorithm = "ring"
    metric = "samples_per_s"
    value = 1.2e6
    tolerance = 0.15                  # relative: 15% worse than value is a regression
    [[machine.login1.allreduce]]      # `bench allreduce`: select by ranks, size, algorithm, dtype
    ranks = 4
    size = "1M"
    algorithm = "shm"
    metric = "busbw_GBps"
    value = 3.1
    tolerance = 0.2

Everything is checked when the benchmark starts, before anything is measured: a file that
cannot be read, an unknown key or metric, or no machine matching this host is bad input
(exit 2, one line naming the file).
"""

import fnmatch
import json
import math
import os
from dataclasses import dataclass

from ..errors import InputError

# Per benchmark: the keys that select a result row, and each metric's better direction.
SELECTORS = {"scaling": ("mode", "ranks", "algorithm"),
             "allreduce": ("ranks", "size", "algorithm", "dtype")}
HIGHER, LOWER = "higher", "lower"
METRICS = {
    "scaling": {"samples_per_s": HIGHER, "speedup": HIGHER, "efficiency": HIGHER,
                "step_time_s": LOWER, "comm_fraction": LOWER},
    "allreduce": {"busbw_GBps": HIGHER, "algbw_GBps": HIGHER, "busbw_vs_native": HIGHER,
                  "time_us": LOWER},
}
VALUE_KEYS = ("metric", "value", "tolerance")


@dataclass
class Reference:
    """One stored value: which rows it applies to, the metric, value and tolerance."""

    select: dict
    metric: str
    value: float
    tolerance: float
    direction: str = HIGHER

    @property
    def higher_is_better(self) -> bool:
        return self.direction == HIGHER

    def label(self) -> str:
        where = " ".join(f"{k}={v}" for k, v in self.select.items())
        return f"{where} {self.metric}".strip()

    def bound(self) -> float:
        """The worst value that still passes."""
        if self.higher_is_better:
            return self.value * (1 - self.tolerance)
        return self.value * (1 + self.tolerance)


@dataclass
class ReferenceSet:
    path: str
    machine: str
    kind: str
    references: list


def load(path, kind: str, hostname: str) -> ReferenceSet:
    """The references of `kind` for the machine whose hostname patterns match `hostname`."""
    data = _read(path)
    machines = data.get("machine") if isinstance(data, dict) else None
    if not isinstance(machines, dict) or not machines:
        raise InputError("expected [machine.NAME] tables (see `--reference` in --help)", path)
    unknown = sorted(set(data) - {"machine"})
    if unknown:
        raise InputError(f"unknown top-level key {unknown[0]!r} (expected machine)", path)
    name, table = _pick_machine(machines, hostname, path)
    entries = table.get(kind)
    if not isinstance(entries, list) or not entries:
        raise InputError(f"machine {name!r} has no [[machine.{name}.{kind}]] references", path)
    refs = [_parse_entry(entry, kind, f"machine.{name}.{kind}[{i}]", path)
            for i, entry in enumerate(entries)]
    return ReferenceSet(str(path), name, kind, refs)


def _read(path) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise InputError(f"cannot read reference file: {os.strerror(err.errno or 0)}",
                         path) from None
    try:
        if str(path).lower().endswith(".toml"):
            import tomllib

            return tomllib.loads(raw.decode("utf-8"))
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"not a valid reference file: {first}", path) from None


def _pick_machine(machines: dict, hostname: str, path):
    for name, table in machines.items():
        if not isinstance(table, dict):
            raise InputError(f"machine.{name} must be a table", path)
        patterns = table.get("hostname", name)
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise InputError(f"machine.{name}.hostname must be a string or a list of them",
                             path)
        if any(fnmatch.fnmatchcase(hostname, p) for p in patterns):
            return name, table
    raise InputError(f"no machine matches this host {hostname!r} "
                     f"(machines: {', '.join(machines)})", path)


def _parse_entry(entry, kind: str, where: str, path) -> Reference:
    if not isinstance(entry, dict):
        raise InputError(f"{where} must be a table", path)
    allowed = SELECTORS[kind] + VALUE_KEYS
    unknown = [k for k in entry if k not in allowed]
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} "
                         f"(expected {', '.join(allowed)})", path)
    metric = entry.get("metric")
    if metric not in METRICS[kind]:
        raise InputError(f"{where}: metric {metric!r} is not one of "
                         f"{', '.join(METRICS[kind])}", path)
    value = _number(entry.get("value"), f"{where}.value", path)
    tolerance = _number(entry.get("tolerance"), f"{where}.tolerance", path)
    if value <= 0 or not 0 <= tolerance < 1:
        raise InputError(f"{where}: value must be > 0 and tolerance in [0, 1) "
                         f"(a fraction: 0.1 is 10%), got {value:g}, {tolerance:g}", path)
    select = {k: _selector(k, entry[k], where, path) for k in SELECTORS[kind] if k in entry}
    return Reference(select, metric, value, tolerance, METRICS[kind][metric])


def _number(value, where, path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where}: expected a number, got {value!r}", path)
    return float(value)


def _selector(key, value, where, path):
    if key == "ranks":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{where}.ranks: expected a whole number >= 1, got {value!r}",
                             path)
        return value
    if key == "size":
        from .allreduce import byte_count

        size = byte_count(str(value))
        if size is None:
            raise InputError(f"{where}.size: cannot read {value!r} (e.g. 4096, 64K, 1M)", path)
        return size
    if not isinstance(value, str):
        raise InputError(f"{where}.{key}: expected a string, got {value!r}", path)
    return value


def compare(refs: ReferenceSet, rows: list) -> tuple[list, list, int]:
    """(regression lines, note lines, references checked) for result rows (dicts holding the
    selector keys and the metrics; a metric of None is a point that failed)."""
    regressions, notes, checked = [], [], 0
    for ref in refs.references:
        matching = [row for row in rows
                    if all(row.get(k) == v for k, v in ref.select.items())]
        if not matching:
            notes.append(f"reference: not measured in this run: {ref.label()}")
            continue
        for row in matching:
            checked += 1
            line = _verdict(ref, row.get(ref.metric))
            if line is not None:
                (regressions if line.startswith("REGRESSION") else notes).append(line)
    return regressions, notes, checked


def _verdict(ref: Reference, measured) -> str | None:
    if measured is None:
        return f"REGRESSION: {ref.label()}: no value (the point failed), reference {ref.value:g}"
    worse = measured < ref.bound() if ref.higher_is_better else measured > ref.bound()
    if worse:
        return (f"REGRESSION: {ref.label()}: {measured:.4g}, reference {ref.value:.4g} "
                f"± {ref.tolerance:.0%} ({(measured / ref.value - 1):+.1%})")
    better_bound = ref.value * ((1 + ref.tolerance) if ref.higher_is_better
                                else (1 - ref.tolerance))
    if measured > better_bound if ref.higher_is_better else measured < better_bound:
        return (f"reference: {ref.label()}: {measured:.4g} is better than "
                f"{ref.value:.4g} ± {ref.tolerance:.0%}: update the reference?")
    return None


def report(refs: ReferenceSet, rows: list, echo) -> bool:
    """Print the verdicts (regressions on stderr, one line each); True when none regressed."""
    regressions, notes, checked = compare(refs, rows)
    for line in notes:
        echo(line, err=False)
    for line in regressions:
        echo(line, err=True)
    echo(f"reference {refs.path} (machine {refs.machine}): {checked} checked, "
         f"{len(regressions)} regressions", err=False)
    return not regressions
