import dataclasses
import os

import pytest
from helpers import REPO, check, child_env, run_cli

import hpctrain


def test_version():
    proc = check(run_cli(["--version"]))
    assert hpctrain.__version__ in proc.stdout


def test_help_lists_every_command_with_its_summary():
    proc = check(run_cli(["--help"]))
    listed = proc.stdout.split("Commands:")[1].strip().splitlines()
    names = [line.split()[0] for line in listed]
    assert names == ["bench", "data", "demo", "evaluate", "export", "predict", "run", "train",
                     "warmup"]
    assert all(len(line.split()) > 2 for line in listed), "a command without a summary"


def test_train_help_has_an_option_for_every_config_field():
    from hpctrain.config import TrainConfig

    text = check(run_cli(["train", "--help"])).stdout
    fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "extra"]
    missing = [name for name in fields if f"--{name.replace('_', '-')}" not in text]
    assert not missing, missing


def test_unknown_command_is_usage_error():
    proc = run_cli(["no-such-command"])
    assert proc.returncode == 2
    assert "no-such-command" in proc.stderr


def test_every_setting_is_in_the_readme_table():
    from hpctrain.settings import SETTINGS

    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    table = readme[readme.index("## Environment variables"):]
    table = table[:table.index("\n## ", 5)]
    missing = [name for name in SETTINGS if f"| `{name}` |" not in table]
    assert not missing, f"README's table lacks {missing}"


@pytest.mark.parametrize("variable, value, why", [
    ("HPCTRAIN_FAKE_NODES", "2y2", "expected NODESxRANKS"),
    ("HPCTRAIN_AUTO_BUDGET_S", "soon", "expected a finite number of seconds >= 0"),
    ("HPCTRAIN_SHM_CHUNK_BYTES", "-5", "expected a whole number"),
    ("HPCTRAIN_ALLREDUCE_CHECK", "sometimes", "expected one of first, always"),
    ("HPCTRAIN_FAULT", "raise@one", "expected raise@RANK:STEP, kill@RANK:STEP, nan@RANK:STEP"),
])
def test_a_bad_setting_stops_every_command_in_one_line(tmp_path, variable, value, why):
    proc = run_cli(["data", "synth", "--out", tmp_path / "d", "--samples", "10"],
                   env=child_env(**{variable: value}))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"hpctrain: error: {variable}={value!r}: {why}")
    assert not (tmp_path / "d").exists()


def test_the_cli_choices_are_the_modules_own():
    from hpctrain.kernels import ACTIVATIONS, TASKS

    from hpctrain import train_cli
    from hpctrain.comm import names, registry
    from hpctrain.optim import OPTIMIZERS

    assert set(train_cli.ACTIVATIONS) == set(ACTIVATIONS)
    assert set(train_cli.TASKS) == set(TASKS)
    assert set(train_cli.OPTIMIZERS) == set(OPTIMIZERS)
    assert set(train_cli.ALLREDUCES) == set(names()) | set(registry.ALIASES)


def test_every_option_of_every_command_has_help():
    from hpctrain.cli import cli

    def walk(command, path):
        if hasattr(command, "list_commands"):
            for name in command.list_commands(None):
                yield from walk(command.get_command(None, name), f"{path} {name}")
        else:
            for param in command.params:
                if param.param_type_name == "option" and not param.hidden:
                    yield path, param.opts[-1], bool(param.help)

    bare = [f"{path} {opt}" for path, opt, has_help in walk(cli, "hpctrain") if not has_help]
    assert not bare, f"options without help text: {bare}"
