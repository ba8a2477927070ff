"""The benchmark workloads W1 and W2: the one table every benchmark reads (docs/WORKLOADS.md).

`hpctrain bench scaling`, benchmarks/kernels.py, benchmarks/gpu.py and the PyTorch DDP
comparison all take their shapes and batches from here, so their numbers stay comparable.
Per-script timing knobs (seconds or steps per repeat) stay in the scripts. This module imports
nothing heavy: the benchmark scripts read it before NumPy loads.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    """A fully connected ReLU network and its batches; float32, Adam with lr 1e-3."""

    features: int
    hidden: tuple  # hidden layer widths, input side first
    classes: int  # 2: binary (one sigmoid output, cross-entropy); C > 2: softmax over C
    local_batch: int  # per rank: weak scaling and the single-process benchmarks
    global_batch: int  # over all ranks: strong scaling

    @property
    def task(self) -> str:
        return "binary" if self.classes == 2 else "multiclass"

    @property
    def outputs(self) -> int:
        return 1 if self.classes == 2 else self.classes

    @property
    def layer_sizes(self) -> tuple:
        """(inputs, hidden..., outputs): one weight matrix between each neighbouring pair."""
        return (self.features, *self.hidden, self.outputs)

    @property
    def hidden_flag(self) -> str:
        """The hidden widths as `hpctrain train --hidden` takes them: "1024,1024"."""
        return ",".join(str(h) for h in self.hidden)

    @property
    def parameters(self) -> int:
        sizes = self.layer_sizes
        return sum((i + 1) * o for i, o in zip(sizes[:-1], sizes[1:], strict=True))

    def matrix_flops(self, batch: int) -> int:
        """FLOPs of one step's matrix products: forward, dW, and dA below the top layer."""
        sizes = self.layer_sizes
        products = [i * o for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
        return 2 * batch * (2 * sum(products) + sum(products[1:]))


# W1 names no strong-scaling batch of its own: 4096 is its local batch at 16 ranks.
WORKLOADS = {
    "W1": Workload(features=32, hidden=(64,), classes=2, local_batch=256, global_batch=4096),
    "W2": Workload(features=1024, hidden=(1024, 1024), classes=10, local_batch=512,
                   global_batch=8192),
}
