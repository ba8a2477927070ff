"""SLURM's accounting for the runs of `hpctrain bench report`: Elapsed, MaxRSS and TotalCPU.

A run's job id comes from its summary.json (`slurm.job_id`, written on rank 0 under SLURM),
else from the run directory's name as slurm/train.sbatch makes it (hpctrain-run-JOBID, with
-rTASK in a job array). One `sacct --parsable2` call asks for all of them. Where sacct is
not installed, fails (accounting is often off: `AccountingStorageType=accounting_storage/none`)
or does not know a job, every column says so: the report is never lost to it.
"""

import json
import os
import re
import shutil
import subprocess

COLUMNS = ("Elapsed", "MaxRSS", "TotalCPU")
SACCT_TIMEOUT_S = 15.0
JOB_ID = re.compile(r"\d+(?:_\d+)?")
RUN_NAME = re.compile(r"hpctrain-run-(\d+)(?:-r(\d+))?$")
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def job_id(path: str, summary: dict | None = None) -> str | None:
    """The SLURM job id of the run in `path`, or None when it was not a SLURM job."""
    slurm = (summary or _read_summary(path)).get("slurm")
    found = slurm.get("job_id") if isinstance(slurm, dict) else None
    if found is not None and JOB_ID.fullmatch(str(found)):
        return str(found)
    match = RUN_NAME.search(os.path.basename(os.path.normpath(path)))
    return None if match is None else match.group(1)


def _read_summary(path) -> dict:
    """summary.json as far as it can be read ({} otherwise): a failed run's too."""
    try:
        with open(os.path.join(path, "summary.json")) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def query(job_ids) -> tuple[dict, str | None]:
    """({job id: {column: value}}, None) from sacct, or ({}, why there is nothing)."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}, None
    sacct = shutil.which("sacct")
    if sacct is None:
        return {}, "sacct not found"
    # Not --allocations: it would hide the steps, and MaxRSS lives only there.
    cmd = [sacct, "--jobs", ",".join(ids), "--parsable2", "--format",
           "JobID," + ",".join(COLUMNS)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SACCT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {}, f"sacct timed out after {SACCT_TIMEOUT_S:g} s"
    except OSError as err:
        return {}, f"sacct failed: {err.strerror}"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return {}, f"sacct failed: {why.removeprefix('sacct: ').strip()}"
    return parse(proc.stdout), None


def parse(text: str) -> dict:
    """sacct --parsable2 output (header line first) -> {job id: {column: value}}.

    Elapsed and TotalCPU are the job's own line (TotalCPU sums its steps); MaxRSS is only
    on the steps (batch, extern, 0, 1, ...): the largest of them.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    names = lines[0].split("|")
    jobs: dict = {}
    for line in lines[1:]:
        row = dict(zip(names, line.split("|"), strict=False))
        job, _, step = row.get("JobID", "").partition(".")
        if not job:
            continue
        entry = jobs.setdefault(job, {column: "" for column in COLUMNS})
        if not step:
            entry["Elapsed"] = row.get("Elapsed", "")
            entry["TotalCPU"] = row.get("TotalCPU", "")
        rss, largest = rss_bytes(row.get("MaxRSS")), rss_bytes(entry["MaxRSS"])
        if rss is not None and (largest is None or rss > largest):
            entry["MaxRSS"] = row["MaxRSS"]
    return jobs


def rss_bytes(text: str) -> int | None:
    """'356812K' -> bytes (sacct's suffixes are powers of 1024); None when empty."""
    match = re.fullmatch(r"([\d.]+)([KMGTP]?)", (text or "").strip().upper())
    if match is None:
        return None
    return int(float(match.group(1)) * UNITS[match.group(2)])


def accounting(runs) -> tuple[list, str | None]:
    """Per run (job id or None, {column: value}); the note for all when sacct answered not.

    Sets each SLURM run's `sacct` (its columns, or the reason they are missing).
    """
    ids = [job_id(run.path, run.summary) for run in runs]
    found, problem = query([i for i in ids if i])
    for run, jid in zip(runs, ids, strict=True):
        if jid is None:
            continue
        values = found.get(jid)
        why = problem or "not known to sacct"
        run.sacct = {"job_id": jid, **(values or {column: why for column in COLUMNS})}
    return ids, problem


def markdown(runs) -> str | None:
    """A table of the SLURM runs' accounting (after `accounting`), or None without any."""
    rows = [run for run in runs if run.sacct]
    if not rows:
        return None
    lines = ["| run | job | " + " | ".join(COLUMNS) + " |", "|" + " --- |" * (2 + len(COLUMNS))]
    for run in rows:
        cells = [os.path.basename(os.path.normpath(run.path)), run.sacct["job_id"]]
        cells += [run.sacct[column] or "—" for column in COLUMNS]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "SLURM accounting (sacct):\n\n" + "\n".join(lines) + "\n"
