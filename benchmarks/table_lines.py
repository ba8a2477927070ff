"""Helpers the benchmark scripts share: print a table row and keep it in a file at once;
write a study's rows (dicts with the same keys) as a CSV."""

import csv


def emit(path, text: str) -> None:
    """Print a row and append it to `path` at once: a study cut short keeps what it measured."""
    print(text, flush=True)
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


def write_rows(path, rows) -> None:
    """rows (dicts with the same keys, in order) as a CSV with a header line."""
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
