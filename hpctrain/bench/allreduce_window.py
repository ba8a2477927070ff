"""`hpctrain bench allreduce`'s two extras: the zero-copy `shm-window` row and `--tune`.

`shm-window` is a training step's buffer in the node's shared window (comm/shm_step.py), not
an allreduce of a caller's buffer: its inputs are written into the window once, as the engine
writes its gradient there, and each timed call is the reduce alone, the sum read in place.
"""

WINDOW = "shm-window"


def time_window(comm, inputs, repeats: int, warmup: int) -> float:
    """The zero-copy shm: checked like the others (copied in and out, for the check only),
    then timed as a training step uses it, on data already in the window."""
    from ..comm import timing
    from ..comm.shm_step import SharedStepBuffer
    from .allreduce import check_result  # here: allreduce.py imports this module

    buffer = SharedStepBuffer(comm, inputs.count, inputs.dtype)
    try:
        def copying(comm, buf):
            buffer.mine[:] = buf
            buf[:] = buffer.reduce()

        check_result(comm, WINDOW, copying, inputs)
        buffer.mine[:] = inputs.data
        for _ in range(warmup):
            buffer.reduce()
        return timing.median_time(comm, buffer.reduce, repeats)
    finally:
        buffer.close()


def tune_sizes(comm, byte_sizes) -> None:
    """`--tune`: auto's choices measured afresh and cached; a line per size on rank 0."""
    from ..comm.auto import cache_path
    from ..comm.step_buffer import tune

    for row in tune(comm, [max(1, size // 4) for size in byte_sizes]):
        if comm.Get_rank() == 0:
            times = ", ".join(f"{name} {seconds * 1e6:.1f} us"
                              for name, seconds in sorted(row["seconds"].items()))
            print(f"{4 * row['elements']:>12} B  {row['use']:<12} -> {row['algorithm']:<10} "
                  f"({times})", flush=True)
    if comm.Get_rank() == 0:
        print(f"# cached in {cache_path()}", flush=True)
