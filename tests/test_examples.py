"""Smoke tests: each script in examples/ runs to the end and prints a sensible result."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, timeout=300):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=EXAMPLES.parent,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def reported(output, label):
    match = re.search(rf"^{label}:? ([0-9.eE+-]+)\s*$", output, re.MULTILINE)
    assert match, f"no '{label}' line in:\n{output}"
    return float(match.group(1))


def test_examples_are_the_three_documented_ones():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == [
        "01_lfp_toy.py",
        "02_rules_and_rewards.py",
        "03_torch_crosscheck.py",
    ]


def test_lfp_toy_learns_the_swirls():
    output = run_example("01_lfp_toy.py")
    assert reported(output, "before training: test accuracy") < 0.5
    assert reported(output, "test accuracy") > 0.9  # chance is 1/3


def test_rules_and_rewards_learns_the_digits():
    pytest.importorskip("sklearn", reason="the digits need scikit-learn (the data extra)")
    output = run_example("02_rules_and_rewards.py")
    assert "reward: bounded_softmax(lower=0.0, higher=0.9" in output
    assert output.startswith("rule: ")
    assert reported(output, "test accuracy") > 0.6  # chance is 1/10


@pytest.mark.crosscheck
def test_torch_crosscheck_agrees_with_lfprop():
    hint = "run `make crosscheck` (the crosscheck extra)"
    pytest.importorskip("torch", reason=f"needs torch: {hint}")
    pytest.importorskip("lfprop", reason=f"needs lfprop==1.0.0: {hint}")
    output = run_example("03_torch_crosscheck.py")
    for name in ("0.weight", "0.bias", "4.weight", "4.bias", "6.weight", "6.bias"):
        assert re.search(rf"^{re.escape(name)}\s", output, re.MULTILINE), name
    assert reported(output, "max relative difference lfp_ref vs lfprop 1.0.0") <= 1e-10
