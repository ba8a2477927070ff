"""What `evaluate` adds to loss and accuracy: per-class metrics and R², summed over ranks.

Classification: each rank counts its rows' (true, predicted) pairs into a C x C confusion
matrix (rows: true class, columns: predicted), one integer Allreduce sums them, and rank 0
derives per-class precision, recall, F1 and support, and their macro averages. A class that
is never predicted has no precision (None, JSON null), one that never occurs no recall; F1
is then None too, and the macro averages are over the classes that have one.
Regression: R² = 1 - SS_res / SS_tot, with SS_tot about the mean of all ranks' targets (one
Allreduce for the count and sum, a second for the squared sums, in float64).
The predicted class is the one `predict` writes: binary P(class 1) > 0.5 (so that the
matrix's diagonal is the reported accuracy, whose kernel tests the logit > 0), multiclass
the most probable class.
"""

import numpy as np
from mpi4py import MPI


def classification(comm, model, params, X, y, names=None) -> dict:
    """{confusion, classes: [{class, precision, recall, f1, support}], macro_*}."""
    C = model.classes
    p = model.predict(params, X)
    predicted = (p > 0.5).astype(np.int64) if model.task == "binary" else p.argmax(axis=1)
    counts = np.bincount(y.astype(np.int64) * C + predicted, minlength=C * C)
    confusion = counts.astype(np.int64).reshape(C, C)
    comm.Allreduce(MPI.IN_PLACE, confusion, op=MPI.SUM)
    per_class = []
    for k in range(C):
        hits, predicted_k, support = confusion[k, k], confusion[:, k].sum(), confusion[k].sum()
        precision = _ratio(hits, predicted_k)
        recall = _ratio(hits, support)
        f1 = (None if precision is None or recall is None else
              0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
        per_class.append({"class": names[k] if names else k, "precision": precision,
                          "recall": recall, "f1": f1, "support": int(support)})
    found = {"confusion": confusion.tolist(), "classes": per_class}
    for key in ("precision", "recall", "f1"):
        values = [c[key] for c in per_class if c[key] is not None]
        found[f"macro_{key}"] = float(np.mean(values)) if values else None
    return found


def r_squared(comm, model, params, X, y) -> float | None:
    """R² over every rank's rows (None when the targets do not vary: SS_tot = 0)."""
    predictions = model.predict(params, X).astype(np.float64)
    targets = y.astype(np.float64)
    first = np.array([len(targets), targets.sum()], dtype=np.float64)
    comm.Allreduce(MPI.IN_PLACE, first, op=MPI.SUM)
    mean = first[1] / max(first[0], 1)
    squares = np.array([((targets - predictions) ** 2).sum(), ((targets - mean) ** 2).sum()])
    comm.Allreduce(MPI.IN_PLACE, squares, op=MPI.SUM)
    residual, total = squares
    return None if total == 0 else float(1 - residual / total)


def _ratio(a, b):
    return None if b == 0 else float(a / b)


def report_lines(result: dict) -> list:
    """The text `evaluate` prints after its first line: R², or a per-class table and the
    confusion matrix."""
    if "r2" in result:
        return [f"  R² {_shown(result['r2'])}"]
    width = max(5, *(len(str(c["class"])) for c in result["classes"]))
    lines = [f"  {'class':>{width}}  precision  recall      f1  support"]
    for c in result["classes"]:
        lines.append(f"  {str(c['class']):>{width}}  {_shown(c['precision']):>9}  "
                     f"{_shown(c['recall']):>6}  {_shown(c['f1']):>6}  {c['support']:>7}")
    lines.append(f"  {'macro':>{width}}  {_shown(result['macro_precision']):>9}  "
                 f"{_shown(result['macro_recall']):>6}  {_shown(result['macro_f1']):>6}")
    lines.append("  confusion (rows: true class, columns: predicted):")
    lines += ["    " + " ".join(f"{n:>7}" for n in row) for row in result["confusion"]]
    return lines


def _shown(value) -> str:
    return "-" if value is None else f"{value:.4f}"
