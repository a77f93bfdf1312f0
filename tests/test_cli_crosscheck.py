"""``lfp-ref crosscheck``: the table, and the exit status (0 pass, 1 mismatch, 2 no extra)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lfp_ref import cli

_HINT = "run `make crosscheck` (the crosscheck extra)"


def lfp_ref_command():
    script = Path(sys.executable).parent / "lfp-ref"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lfp_ref.cli"]


def run_cli(*args, env=None, timeout=300):
    return subprocess.run(
        [*lfp_ref_command(), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.mark.slow  # a fresh interpreter imports torch, lfprop and zennit: about 11 s
@pytest.mark.crosscheck
def test_crosscheck_command_prints_the_table_and_passes():
    pytest.importorskip("torch", reason=f"needs torch: {_HINT}")
    pytest.importorskip("lfprop", reason=f"needs lfprop==1.0.0: {_HINT}")
    pytest.importorskip("zennit", reason=f"needs zennit==0.5.1: {_HINT}")
    out = run_cli("crosscheck", "--model", "mlp", "--seed", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["model", "check"]
    assert lines[-1] == "24 compared, 0 failed, 0 not available: PASS"
    body = [line for line in lines if line.startswith("mlp ")]
    assert len(body) == 24 and all(line.endswith("pass") for line in body)


@pytest.mark.crosscheck
def test_crosscheck_command_exits_1_on_a_mismatch(monkeypatch, capsys):
    """The same command in-process, with a torch twin whose weights are off by 1e-7."""
    torch = pytest.importorskip("torch", reason=f"needs torch: {_HINT}")
    pytest.importorskip("lfprop", reason=f"needs lfprop==1.0.0: {_HINT}")
    pytest.importorskip("zennit", reason=f"needs zennit==0.5.1: {_HINT}")
    from lfp_ref import crosscheck, interop

    to_torch = interop.to_torch

    def perturbed_twin(model):
        twin = to_torch(model)
        with torch.no_grad():
            twin[0].weight.mul_(1 + 1e-7)
        return twin

    monkeypatch.setattr(crosscheck.interop, "to_torch", perturbed_twin)
    status = cli.main(["crosscheck", "--model", "mlp", "--format", "markdown"])
    out = capsys.readouterr().out
    assert status == 1
    assert "| mlp | lfprop 1.0.0 LFPEpsilonComposite (sum) | 0.weight |" in out
    assert out.rstrip().endswith(": FAIL")


def test_crosscheck_without_torch_says_how_to_install(tmp_path):
    """torch missing: one line on stderr, nothing on stdout, exit status 2."""
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('simulated: torch is not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = run_cli("crosscheck", "--model", "mlp", env=env)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        "lfp-ref crosscheck: error: install the crosscheck extra: make crosscheck "
        "(torch is missing)"
    ]


def test_crosscheck_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["crosscheck", "--model", "alexnet"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'alexnet'" in capsys.readouterr().err
    assert cli.main(["crosscheck", "--batch-size", "1"]) == 2
    assert "--batch-size must be at least 2" in capsys.readouterr().err


def test_every_subcommand_is_registered():
    """``lfp-ref`` registers every module of cli.SUBCOMMANDS (an import error is raised, never
    skipped)."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert tuple(sub.choices) == cli.SUBCOMMANDS
