"""A dense network whose parameters live in ONE flat float32 buffer (docs/INTERFACES.md).

Layer l (fan_in i, fan_out o) occupies W_l (i*o floats, row-major (i, o)) then b_l (o floats).
The flat layout makes the gradient one contiguous buffer: one allreduce moves all of it and
one fused kernel updates all parameters. The model itself holds no parameters, only the
layout (as int64 arrays the compiled kernels read) and per-batch-size workspaces, so the
same model serves any buffer: training, a checkpoint, a rank's broadcast copy.

Not thread-safe: calls share the workspaces.
"""

import numpy as np

from .errors import InputError
from .kernels import ACTIVATIONS, TASKS

_MAX_CACHED_BATCH_SIZES = 4
_EVAL_CHUNK_FLOATS = 1 << 22  # bound on an evaluation chunk's workspace (16 MiB of floats)


_compiled = None


def _kernels():
    """hpctrain.kernels.mlp, imported on first use: building a model or reading its spec
    should not load Numba, and importing on every call would cost the hot path."""
    global _compiled
    if _compiled is None:
        from .kernels import mlp

        _compiled = mlp
    return _compiled


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _hidden_sizes(hidden):
    """A tuple of positive ints from an int or a sequence of ints (empty: no hidden layer)."""
    if isinstance(hidden, (int, np.integer)):
        hidden = (hidden,)
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise InputError(f"hidden layer sizes must be a list of positive integers, "
                         f"got {hidden!r}")
    return tuple(_positive_int(h, "a hidden layer size") for h in hidden)


def _output_count(task, classes):
    """How many logits the head reads: 1 for binary and regression, C for multiclass."""
    if task == "binary":
        if classes != 2:
            raise InputError(f"a binary task has 2 classes, got {classes!r}")
        return 1
    if task == "multiclass":
        if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) \
                or classes < 2:
            raise InputError(f"a multiclass task needs at least 2 classes, got {classes!r}")
        return int(classes)
    return 1


class MLP:
    """features -> hidden layers (one activation) -> linear logits -> the task's head."""

    def __init__(self, features, hidden=(64,), activation="relu", task="binary", classes=2):
        activations, tasks = ACTIVATIONS, TASKS
        if not isinstance(activation, str) or activation not in activations:
            raise InputError(f"unknown activation {activation!r}; "
                             f"choose from {', '.join(activations)}")
        if not isinstance(task, str) or task not in tasks:
            raise InputError(f"unknown task {task!r}; choose from {', '.join(tasks)}")
        self.features = _positive_int(features, "the feature count")
        self.hidden = _hidden_sizes(hidden)
        self.activation = activation
        self.task = task
        self.outputs = _output_count(task, classes)
        self.classes = 0 if task == "regression" else int(classes)
        sizes = (self.features, *self.hidden, self.outputs)
        self.layer_shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
        self._layout(activations[activation], tasks[task])
        self._workspaces = {}

    def _layout(self, act_code, task_code):
        """The int64 arrays the kernels read, and the offset of each layer's W."""
        self._fan_in = np.array([i for i, _ in self.layer_shapes], dtype=np.int64)
        self._fan_out = np.array([o for _, o in self.layer_shapes], dtype=np.int64)
        sizes = self._fan_in * self._fan_out + self._fan_out
        self._offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        self._acts = np.full(len(self.layer_shapes), act_code, dtype=np.int64)
        self._task_code = task_code
        self.n_params = int(sizes.sum())

    # ---- parameters -------------------------------------------------------------------

    def init_params(self, seed) -> np.ndarray:
        """A new flat buffer: He normal for relu layers, Glorot uniform for the others
        (the output layer is linear, so Glorot); biases zero. Same seed, same bits."""
        rng = np.random.default_rng(seed)
        flat = np.zeros(self.n_params, dtype=np.float32)
        last = len(self.layer_shapes) - 1
        for l, (W, _) in enumerate(self.views(flat)):
            fan_in, fan_out = W.shape
            if self.activation == "relu" and l < last:
                W[:] = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                W[:] = rng.uniform(-limit, limit, (fan_in, fan_out))
        return flat

    def views(self, flat):
        """[(W, b), ...] as views into `flat` (writing them writes the buffer)."""
        self._check_flat(flat, "parameter")
        out = []
        for start, (i, o) in zip(self._offsets, self.layer_shapes, strict=True):
            W = flat[start:start + i * o].reshape(i, o)
            out.append((W, flat[start + i * o:start + i * o + o]))
        return out

    def _check_flat(self, flat, what):
        if not isinstance(flat, np.ndarray) or flat.shape != (self.n_params,) \
                or flat.dtype != np.float32 or not flat.flags.c_contiguous:
            raise ValueError(f"the {what} buffer must be a contiguous float32 array of "
                             f"{self.n_params} values, got {_describe(flat)}")

    # ---- compute -----------------------------------------------------------------------

    def loss_grad(self, params, X, y, grad):
        """grad (overwritten) = SUM over rows of per-sample gradients; (loss sum, right)."""
        mlp = _kernels()
        self._check_flat(params, "parameter")
        self._check_flat(grad, "gradient")
        if not grad.flags.writeable:
            raise ValueError("the gradient buffer is read-only")
        X, y = self._batch(X, y)
        outputs, deltas = self._workspace(X.shape[0])
        try:
            loss, correct = mlp.loss_grad(params, X, y, grad, self._offsets, self._fan_in,
                                          self._fan_out, self._acts, self._task_code,
                                          outputs, deltas)
        except ValueError as err:
            raise InputError(f"{err} (task {self.task})") from None
        return float(loss), int(correct)

    def loss_grad_parts(self, params, X, y, grad) -> list:
        """Jobs compiling the pieces of loss_grad's kernel for these inputs' types, for
        hpctrain.node_compile to spread over a node's ranks (grad is then undefined)."""
        X, y = self._batch(X, y)
        if X.shape[0] == 0:  # the pieces run as loss_grad would not (BLAS takes no empty matrix)
            return []
        outputs, deltas = self._workspace(X.shape[0])
        return _kernels().part_jobs(params, X, y, grad, self._offsets, self._fan_in,
                                    self._fan_out, self._acts, self._task_code, outputs, deltas)

    def staged_loss_grad(self, params, X, y, grad):
        """loss_grad in stages, for overlapping the gradient's allreduce with backward:
        (loss sum, correct, stages), where iterating `stages` runs the backward pass one
        layer at a time, top down, and yields after each layer the offset from which `grad`
        is final. The same kernel calls as loss_grad: bitwise the same gradient."""
        from .kernels import mlp_stages  # Numba: compiled on first use, not at import

        self._check_flat(params, "parameter")
        self._check_flat(grad, "gradient")
        X, y = self._batch(X, y)
        outputs, deltas = self._workspace(X.shape[0])
        layout = (self._offsets, self._fan_in, self._fan_out, self._acts)
        if X.shape[0] == 0:
            grad[:] = 0
            return 0.0, 0, iter((0,))
        try:
            loss, correct = mlp_stages.forward_head(params, X, y, *layout, self._task_code,
                                                    outputs, deltas)
        except ValueError as err:
            raise InputError(f"{err} (task {self.task})") from None

        def stages():
            for l in range(len(self.layer_shapes) - 1, -1, -1):
                mlp_stages.backward_layer(l, params, X, grad, *layout, outputs, deltas)
                yield int(self._offsets[l])

        return float(loss), int(correct), stages()

    def evaluate(self, params, X, y):
        """(loss sum, right predictions) over all rows, in bounded-memory chunks."""
        mlp = _kernels()
        self._check_flat(params, "parameter")
        X, y = self._batch(X, y)
        loss, correct = 0.0, 0
        for start, stop in self._chunks(X.shape[0]):
            outputs, _ = self._workspace(stop - start, deltas=False)
            try:
                part = mlp.loss(params, X[start:stop], y[start:stop], self._offsets,
                                self._fan_in, self._fan_out, self._acts, self._task_code,
                                outputs)
            except ValueError as err:
                raise InputError(f"{err} (task {self.task})") from None
            loss += part[0]
            correct += part[1]
        return float(loss), int(correct)

    def predict(self, params, X):
        """binary: P(y = 1) (n,); multiclass: class probabilities (n, C); regression: (n,)."""
        mlp = _kernels()
        self._check_flat(params, "parameter")
        X = self._features(X)
        out = np.empty((X.shape[0], self.outputs), dtype=np.float32)
        for start, stop in self._chunks(X.shape[0]):
            outputs, _ = self._workspace(stop - start, deltas=False)
            mlp.predict(params, X[start:stop], self._offsets, self._fan_in, self._fan_out,
                        self._acts, self._task_code, outputs, out[start:stop])
        return out if self.task == "multiclass" else out[:, 0]

    # ---- inputs and workspaces -----------------------------------------------------------

    def _features(self, X):
        """X as a writable, C-contiguous float32 (n, features) array (copied only if not)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.features:
            raise InputError(f"expected input rows of {self.features} features, "
                             f"got an array of shape {X.shape}")
        if X.dtype != np.float32 or not X.flags.c_contiguous or not X.flags.writeable:
            # read-only or strided inputs would make Numba compile another specialisation
            X = np.array(X, dtype=np.float32, order="C")
        return X

    def _batch(self, X, y):
        X = self._features(X)
        label_type = np.float32 if self.task == "regression" else np.int32
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise InputError(f"expected {X.shape[0]} labels, got an array of shape {y.shape}")
        if y.dtype != label_type or not y.flags.c_contiguous or not y.flags.writeable:
            if label_type is np.int32 and y.dtype.kind == "f" and np.any(y != np.round(y)):
                raise InputError(f"{self.task} labels must be whole numbers")
            y = np.array(y, dtype=label_type, order="C")
        return X, y

    def _chunks(self, n):
        rows = max(1, _EVAL_CHUNK_FLOATS // int(self._fan_out.sum()))
        return [(start, min(n, start + rows)) for start in range(0, n, rows)] or [(0, 0)]

    def _workspace(self, n, deltas=True):
        """Per-batch-size scratch buffers, allocated once (a few sizes are kept)."""
        key = (n, deltas)
        found = self._workspaces.get(key)
        if found is None:
            if len(self._workspaces) >= _MAX_CACHED_BATCH_SIZES:
                self._workspaces.pop(next(iter(self._workspaces)))
            outputs = np.empty(n * int(self._fan_out.sum()), dtype=np.float32)
            width = 2 * n * int(self._fan_out.max()) if deltas else 0
            found = (outputs, np.empty(width, dtype=np.float32))
            self._workspaces[key] = found
        return found

    # ---- description ---------------------------------------------------------------------

    def spec(self) -> dict:
        """A plain dict (JSON/HDF5 attribute friendly) that rebuilds this model."""
        return {"features": self.features, "hidden": list(self.hidden),
                "activation": self.activation, "task": self.task, "classes": self.classes}

    @classmethod
    def from_spec(cls, spec) -> "MLP":
        keys = ("features", "hidden", "activation", "task", "classes")
        if not isinstance(spec, dict) or any(k not in spec for k in keys):
            raise InputError(f"a model description needs the keys {', '.join(keys)}; "
                             f"got {spec!r}")
        return cls(spec["features"], spec["hidden"], spec["activation"],
                   spec["task"], spec["classes"])

    def __repr__(self):
        return (f"MLP(features={self.features}, hidden={self.hidden}, "
                f"activation={self.activation!r}, task={self.task!r}, classes={self.classes})")


def _describe(a):
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__
