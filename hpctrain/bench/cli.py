"""`hpctrain bench`: the benchmarks, each subcommand imported only when used.

One line in BENCHMARKS adds a benchmark ("name": "module:click command").
"""

import click

from ..cli import LazyGroup

BENCHMARKS = {
    "allreduce": "hpctrain.bench.allreduce:allreduce",
    "scaling": "hpctrain.bench.scaling:scaling",
    "report": "hpctrain.bench.report:report",
}


@click.group(cls=LazyGroup, lazy_commands=BENCHMARKS)
def bench():
    """Benchmarks that print tables and write CSV/PNG (run under mpiexec where they say so)."""
