"""The `hpctrain` command line: one group, with each subcommand loaded only when used.

Loading lazily keeps `hpctrain data ...` free of MPI and Numba start-up, and lets
`runtime.configure` fix thread counts before NumPy or Numba are imported.
"""

import importlib
import sys
import time

import click

from . import __version__
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_STOPPED,
    InputError,
    OutputError,
    RunFailed,
    Stopped,
)
from .failures import ABORT_GRACE_S
from .settings import check_environment
from .world import current_rank

# name -> "module:attribute" of a click command or group
COMMANDS = {
    "data": "hpctrain.data.cli:data",
    "train": "hpctrain.train_cli:train",
    "evaluate": "hpctrain.train_cli:evaluate",
    "predict": "hpctrain.train_cli:predict",
    "export": "hpctrain.export_cli:export",
    "demo": "hpctrain.train_cli:demo",
    "run": "hpctrain.train_cli:run",
    "bench": "hpctrain.bench.cli:bench",
    "warmup": "hpctrain.warmup_cli:warmup",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy_commands=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            check_environment()  # a bad HPCTRAIN_* value fails before anything starts
            return super().invoke(ctx)
        except InputError as err:
            report_error(err)
            sys.exit(EXIT_BAD_INPUT)
        except (RunFailed, OutputError) as err:
            report_error(err)
            sys.exit(EXIT_FAILED)
        except Stopped as err:
            report_error(err, "hpctrain: ")
            sys.exit(EXIT_STOPPED)


def report_error(err: Exception, prefix: str = "hpctrain: error: ") -> None:
    """One line on stderr; a collectively agreed error is printed by rank 0 alone."""
    if getattr(err, "collective", False) and current_rank() != 0:
        let_rank_0_speak()
        return
    click.echo(f"{prefix}{err}", err=True)


def let_rank_0_speak() -> None:
    """A silent rank waits a moment before it exits: Open MPI's launcher ends the whole job
    when the first rank exits non-zero, and a rank 0 killed before its line was forwarded
    would leave the job with no word of why (seen under Open MPI 5)."""
    time.sleep(ABORT_GRACE_S)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
@click.version_option(__version__, prog_name="hpctrain")
def cli():
    """Data-parallel training and scaling studies on MPI clusters.

    Every command that trains or evaluates is an SPMD program: start it under
    mpiexec/mpirun/srun (or plainly, as one rank).
    """


def main(argv=None):
    """Run the CLI; a usage error is one line (printed by rank 0 only), exit status 2."""
    try:
        code = cli.main(args=argv, prog_name="hpctrain", standalone_mode=False)
    except click.UsageError as err:
        where = err.ctx.command_path if err.ctx is not None else "hpctrain"
        report_usage(f"{err.format_message()} (see '{where} --help')")
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as err:
        report_usage(err.format_message())
        sys.exit(err.exit_code)
    except click.Abort:
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)


def report_usage(message: str) -> None:
    # Every rank of an mpiexec launch parses the same command line: rank 0 alone says so.
    if current_rank() == 0:
        click.echo(f"hpctrain: error: {message}", err=True)
    else:
        let_rank_0_speak()


if __name__ == "__main__":
    main()
