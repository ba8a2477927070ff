from helpers import check, run_cli

import hpctrain


def test_version():
    proc = check(run_cli(["--version"]))
    assert hpctrain.__version__ in proc.stdout


def test_help_lists_commands():
    proc = check(run_cli(["--help"]))
    for name in ("data", "train", "evaluate", "predict", "demo", "bench"):
        assert name in proc.stdout


def test_unknown_command_is_usage_error():
    proc = run_cli(["no-such-command"])
    assert proc.returncode == 2
    assert "no-such-command" in proc.stderr
