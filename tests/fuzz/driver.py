"""Fuzz one kind of untrusted input in this process: every case must end, within its time,
in success or an InputError naming the file, and leave nothing half-written.

    python tests/fuzz/driver.py KIND WORKDIR SEED CASES

KIND: csv (data import of a generated CSV), manifest (a dataset's manifest.json, mutated),
shard (a shard's bytes flipped or cut), checkpoint (a checkpoint's bytes flipped or cut),
toml (a --config file of known and unknown keys with values of every type, read and checked
the way `train` does before anything is created).
A case that hangs is ended by faulthandler (exit 1 with the stack), since no Python-level
timeout can interrupt a loop inside HDF5's C code. Prints "ok KIND: N cases (R refused)".
"""

import faulthandler
import json
import os
import shutil
import sys

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from hpctrain.errors import InputError

CASE_TIMEOUT_S = 20
KIND, WORK, SEED, CASES = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
refused = [0]


def guarded(fn, path_hint):
    """Run one case: success, or an InputError that names a file under WORK."""
    faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True)
    try:
        fn()
    except InputError as err:
        refused[0] += 1
        if os.environ.get("FUZZ_SHOW"):
            print("refused:", str(err)[-110:])
        assert err.path or path_hint in str(err), f"the error names no file: {err}"
        return False
    finally:
        faulthandler.cancel_dump_traceback_later()
    return True


# --- csv --------------------------------------------------------------------------------

CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**20, 10**20).map(str),
    st.sampled_from(["", "nan", "inf", "-inf", "1e999", "yes", "no", '"1,2"', " 3 ", "0x10",
                     "\u00e9", "1_000", "--1", "NaN"]),
    st.text(max_size=8),
)
HEADER = st.sampled_from(["y", "x", "a", "b", "", "Unnamed: 0", "y ", "\u00e9t\u00e9", '"y"'])


@st.composite
def csv_bytes(draw):
    """A well-formed numeric CSV (header a, b, ..., y), then zero to three kinds of damage:
    hostile cells, ragged rows, hostile header names, stray bytes."""
    cols = draw(st.integers(1, 4))
    names = [chr(ord("a") + i) for i in range(cols)] + ["y"]
    n = draw(st.integers(0, 12))
    label = st.sampled_from(["0", "1", "2"]) if draw(st.booleans()) else \
        st.floats(-5, 5, allow_nan=False).map(repr)
    rows = [[repr(draw(st.floats(-1e6, 1e6, allow_nan=False))) for _ in range(cols)]
            + [draw(label)] for _ in range(n)]
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["cell", "ragged", "header", "extra-header"]))
        if how == "cell" and rows:
            row = draw(st.integers(0, len(rows) - 1))
            rows[row][draw(st.integers(0, len(rows[row]) - 1))] = draw(CELL)
        elif how == "ragged" and rows:
            row = draw(st.integers(0, len(rows) - 1))
            rows[row] = rows[row][:-1] if draw(st.booleans()) else rows[row] + ["1"]
        elif how == "header":
            names[draw(st.integers(0, len(names) - 1))] = draw(HEADER)
        elif how == "extra-header":
            names.insert(0, draw(HEADER))
            rows = [[str(i)] + r for i, r in enumerate(rows)]
    text = "\n".join([",".join(names)] + [",".join(r) for r in rows])
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 7)) == 0:  # invalid UTF-8, a NUL, a bare CR somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\x00", b"\r", b"\xc3"])) + data[at:]
    return data


def fuzz_csv():
    from hpctrain.data.importers import import_dataset

    src, out = os.path.join(WORK, "in.csv"), os.path.join(WORK, "out")

    @seed(SEED)
    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(csv_bytes(), st.sampled_from(["binary", "multiclass", "regression", None]))
    def case(data, task):
        with open(src, "wb") as f:
            f.write(data)
        shutil.rmtree(out, ignore_errors=True)
        ok = guarded(lambda: import_dataset(src, out, label="y", task=task), src)
        if not ok:
            assert not os.path.exists(out), "a refused import left its output"
        else:
            check_dataset(out)

    case()


def check_dataset(path):
    from hpctrain.data import open_dataset

    with open_dataset(path) as ds:
        for split in ds.splits:
            X, y = ds.read(split, 0, ds.rows(split))
            assert len(X) == len(y) == ds.rows(split)
            assert np.isfinite(X).all(), "a dataset with non-finite features was accepted"


# --- manifest and shards ----------------------------------------------------------------

def good_dataset():
    from hpctrain.data.synth import make_synthetic

    path = os.path.join(WORK, "good")
    if not os.path.exists(path):
        make_synthetic(path, samples=60, features=3, classes=3, shards=2, val_fraction=0.2)
    return path


JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64), st.floats(),
              st.text(max_size=6), st.sampled_from(["../x", "/etc/passwd", "train"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6)


def mutate_json(doc, draw_path, value):
    """Replace the value at a path of keys/indices (or delete it when value is ...)."""
    target = doc
    for key in draw_path[:-1]:
        target = target[key]
    if value is Ellipsis:
        del target[draw_path[-1]]
    else:
        target[draw_path[-1]] = value


def paths_of(doc, prefix=()):
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += paths_of(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += paths_of(v, prefix + (i,))
    return found


def fuzz_manifest():
    good = good_dataset()
    with open(os.path.join(good, "manifest.json")) as f:
        original = json.load(f)
    work = os.path.join(WORK, "m")
    paths = paths_of(original)

    @seed(SEED)
    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.sampled_from(paths), st.one_of(st.just(Ellipsis), JSON_VALUE)),
                    min_size=1, max_size=3))
    def case(edits):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(good, work)
        doc = json.loads(json.dumps(original))
        for path, value in edits:
            try:
                mutate_json(doc, path, value)
            except (KeyError, IndexError, TypeError):
                pass  # an earlier edit removed or replaced that path
        with open(os.path.join(work, "manifest.json"), "w") as f:
            json.dump(doc, f)
        guarded(lambda: check_dataset(work), work)

    case()


@st.composite
def damage(draw, size):
    """(flips: [(position, bit)], new length or None)."""
    flips = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 7)),
                          min_size=0, max_size=4))
    cut = draw(st.one_of(st.none(), st.integers(0, size)))
    return flips, cut


def damaged_copy(src, dst, flips, cut):
    data = bytearray(open(src, "rb").read())
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    with open(dst, "wb") as f:
        f.write(data if cut is None else data[:cut])


def fuzz_shard():
    good = good_dataset()
    shard = os.path.join("train", "shard-00000.h5")
    size = os.path.getsize(os.path.join(good, shard))
    work = os.path.join(WORK, "s")

    @seed(SEED)
    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(damage(size))
    def case(d):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(good, work)
        damaged_copy(os.path.join(good, shard), os.path.join(work, shard), *d)
        guarded(lambda: check_dataset(work), work)

    case()


def fuzz_checkpoint():
    from hpctrain import checkpoint as ckpt
    from hpctrain.model import MLP
    from hpctrain.optim import make_optimizer

    model = MLP(3, (4,), "relu", "multiclass", 3)
    src, dst = os.path.join(WORK, "good.h5"), os.path.join(WORK, "bad.h5")
    params = model.init_params(0)
    ckpt.write(src, model, params, make_optimizer("adam", model.n_params, lr=1e-3).state_dict(), 5)

    @seed(SEED)
    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(damage(os.path.getsize(src)))
    def case(d):
        damaged_copy(src, dst, *d)
        state = {}
        if guarded(lambda: state.update(c=ckpt.load(dst)), dst):
            assert np.array_equal(state["c"].params, params), "damage loaded as other numbers"

    case()


# --- toml -------------------------------------------------------------------------------

def toml_literal(value) -> str:
    """A Python value as TOML text (strings as basic strings, floats incl. nan/inf)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, repr(value)) \
            if value == value else "nan"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return str(value)


TOML_VALUE = st.recursive(
    st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(),
              st.text(max_size=6), st.sampled_from(["adam", "sgd", "ring", "relu", "8,8", ""])),
    lambda inner: st.lists(inner, max_size=3), max_leaves=4)


@st.composite
def toml_text(draw):
    """[train] (or top-level) lines `key = value`: known keys (either spelling), unknown ones,
    every type; sometimes a line of raw text or a non-table `train`."""
    from hpctrain.config import RULES

    keys = sorted(RULES) + ["no-such-key", "train"]
    lines = ["[train]"] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 5))):
        key = draw(st.sampled_from(keys))
        key = key.replace("_", "-") if draw(st.booleans()) else key
        lines.append(f"{key} = {toml_literal(draw(TOML_VALUE))}")
    if draw(st.integers(0, 5)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=12)))
    return "\n".join(lines) + "\n"


def fuzz_toml():
    from hpctrain.config import TrainConfig, load_toml, parse_hidden

    path = os.path.join(WORK, "train.toml")

    def build():  # train_cli.build_config's path, without a click context
        values = {"data": "d", "out": "r", **load_toml(path)}
        values["hidden"] = parse_hidden(values.get("hidden", (64,)))
        TrainConfig.from_dict(values).validate()

    @seed(SEED)
    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(toml_text())
    def case(text):
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        guarded(build, path)

    case()


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    {"csv": fuzz_csv, "manifest": fuzz_manifest, "shard": fuzz_shard,
     "checkpoint": fuzz_checkpoint, "toml": fuzz_toml}[KIND]()
    print(f"ok {KIND}: {CASES} cases ({refused[0]} refused)")
