"""The bad-input suite of the command line and the training side.

Every class of bad input a user can give ``lfp-ref`` (its train, eval, compare, export, verify
and explain subcommands) or the training API: the command exits with status 2 and one error
line, no traceback, that names what was wrong; the library raises the exact exception type with
a message that names it. The file-system cases run on a small tmpfs (a full disk) or a
read-only bind mount that the tests mount themselves (skipped, with the reason, where they
cannot). The library-level classes (kernels, load_state_dict, data files) are in
tests/test_bad_inputs_library.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from lfp_ref import checkpoint as ckpt
from lfp_ref.data import load
from lfp_ref.train import (
    ConfigError,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    fit,
    read_csv,
    read_run,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("lfp-ref")
LFP_REF = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "lfp_ref.cli"]
TIMEOUT = 120

TOY = ["--model", "toy", "--data", "swirls", "--batch-size", "32", "--lr", "0.02", "--no-progress"]

USER_MODULE = """
import numpy as np
import lfp_ref as lfp


def nan_model(num_classes, input_shape, seed, dtype):
    model = lfp.Sequential(lfp.Dense(input_shape[0], 8, rng=seed, dtype=dtype), lfp.ReLU(),
                           lfp.Dense(8, num_classes, rng=seed, dtype=dtype))
    model[0].weight[0, 0] = np.nan
    return model


def nan_data():
    from lfp_ref.data import load

    dataset = load("blobs")
    dataset.x_train[3, 1] = np.inf
    return dataset
"""


def quiet(**kwargs):
    return dict(progress=False, log=lambda line: None, **kwargs)


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


def assert_usage_error(result, *fragments, absent=()):
    """Exit status 2, one error line on stderr that holds every fragment, no traceback (other
    lines, a progress bar or a download notice, may come before it)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("lfp-ref ")]
    assert len(lines) == 1 and ": error: " in lines[0], result.stderr
    assert result.stderr.strip().splitlines()[-1] == lines[0], result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    for fragment in absent:
        assert fragment not in lines[0], (fragment, lines[0])
    return lines[0]


def _assert_same_run(a, b):
    """Equal bits but the clock: the checkpoint, steps.csv, metrics.csv, metrics.jsonl."""
    state_a, state_b = ckpt.load(a / "last.npz"), ckpt.load(b / "last.npz")
    for state in (state_a, state_b):
        del state["trainer/sum_seconds"]
    assert sorted(state_a) == sorted(state_b)
    for key, value in state_a.items():
        if isinstance(value, np.ndarray):
            assert value.tobytes() == state_b[key].tobytes(), key
        else:
            assert value == state_b[key], key
    assert (a / "steps.csv").read_bytes() == (b / "steps.csv").read_bytes()
    rows = [read_csv(run / "metrics.csv") for run in (a, b)]
    for row in rows[0] + rows[1]:
        row.pop("wall_time")
    assert rows[0] == rows[1] and rows[0]


# --------------------------------------------------------------------------------------------
# mounts the tests make (root only)


def _run(command):
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def mounted(target, *options, source="tmpfs"):
    """``mount [options] source target`` for the test's duration, or a skip with the reason."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command here: the file-system cases need one")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a read-only bind mount needs root")
    target.mkdir(parents=True, exist_ok=True)
    result = _run(["mount", *options, str(source), str(target)])
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or result.returncode})")
    try:
        yield target
    finally:
        if _run(["umount", str(target)]).returncode != 0:
            _run(["umount", "-l", str(target)])


@contextlib.contextmanager
def small_disk(target, size):
    with mounted(target, "-t", "tmpfs", "-o", f"size={size}") as disk:
        yield disk


@contextlib.contextmanager
def read_only(target, source):
    """``source`` seen read-only at ``target`` (a bind mount, then remounted read-only)."""
    with mounted(target, "--bind", source=source):
        result = _run(["mount", "-o", "remount,bind,ro", str(target)])
        probe = target / f".probe-{uuid.uuid4().hex}"
        try:
            probe.write_text("")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip(f"the bind mount did not become read-only ({result.stderr.strip()})")
        yield target


def _fill(disk):
    """Fill the file system of ``disk`` completely; returns the filler file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as file:  # unbuffered: nothing is left to flush
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


# --------------------------------------------------------------------------------------------
# the command line: one error line, exit status 2


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A finished run, a run with a garbage metrics.csv header, a run holding a NaN checkpoint,
    a onecycle run, the user module, a file, an empty folder."""
    root = tmp_path_factory.mktemp("bad-inputs")
    good = root / "good"
    result = lfp_ref("train", *TOY, "--epochs", "2", "--out", good)
    assert result.returncode == 0, result.stderr
    garbage = root / "garbage"
    shutil.copytree(good, garbage)
    (garbage / "metrics.csv").write_text("foo,bar\n1,2\n")
    garbage_steps = root / "garbage-steps"
    shutil.copytree(good, garbage_steps)
    (garbage_steps / "steps.csv").write_bytes(b"\xff\xfe\x00garbage\n")
    nan = root / "nan"
    shutil.copytree(good, nan)
    state = ckpt.load(nan / "last.npz")
    state["model/0.weight"][0, 0] = np.nan
    np.savez(nan / "last.npz", format=np.array(ckpt.FORMAT), **state)
    onecycle = root / "onecycle"
    result = lfp_ref("train", *TOY, "--epochs", "1", "--scheduler", "onecycle", "--out", onecycle)
    assert result.returncode == 0, result.stderr
    (root / "badinputs_user.py").write_text(USER_MODULE)
    (root / "a-file").write_text("not a folder")
    (root / "empty").mkdir()
    (root / "bad.toml").write_text("lr = = 0.1\n")
    (root / "unknown.toml").write_text('model = "toy"\nlearning_rate = 0.1\n')
    (root / "wrong-type.toml").write_text('model = "toy"\ndata = "swirls"\nlr = "fast"\n')
    for package in ("safetensors", "torch"):  # stand-ins that cannot be imported
        (root / "hide" / package).mkdir(parents=True)
        (root / "hide" / package / "__init__.py").write_text(
            f'raise ImportError("No module named {package!r} (hidden by the test)")\n'
        )
    return root


def _cli_cases(w):
    """name: (arguments, extra environment, fragments of the error line, fragments it must not
    hold). Commands run in the workspace folder."""
    empty = w / "empty"
    no_mnist = {"LFP_REF_DATA": str(empty), "XDG_CACHE_HOME": str(empty)}
    hide = {"PYTHONPATH": str(w / "hide")}
    return {
        # --out: empty, a file
        "out-empty": (
            ["train", *TOY, "--out", ""], {},
            ["argument --out: expected a folder, got an empty path"], [],
        ),
        "out-is-a-file": (
            ["train", *TOY, "--out", w / "a-file"], {},
            [f"--out {w / 'a-file'} is a file; give a folder"], [],
        ),
        "compare-out-empty": (
            ["compare", w / "good", "--out", ""], {}, ["argument --out: expected a folder"], [],
        ),
        # negative seeds and sizes
        "verify-negative-seed": (
            ["verify", "--seed", "-5"], {},
            ["lfp-ref verify: error: argument --seed: expected an integer >= 0, got '-5'"], [],
        ),
        "explain-negative-seed": (
            ["explain", "--seed", "-1"], {},
            ["lfp-ref explain: error: argument --seed: expected an integer >= 0, got '-1'"], [],
        ),
        "explain-zero-batch": (
            ["explain", "--batch-size", "0"], {},
            ["argument --batch-size: expected a positive integer, got '0'"], [],
        ),
        "explain-out-is-a-file": (
            ["explain", "--out", w / "a-file"], {}, ["is a file; give a folder for the PNGs"], [],
        ),
        # run folders that are not what they claim
        "compare-garbage-metrics-header": (
            ["compare", w / "good", w / "garbage", "--no-plot"], {},
            [f"{w / 'garbage' / 'metrics.csv'} is not an lfp_ref metrics.csv: its header is "
             "'foo,bar'"], [],
        ),
        "compare-garbage-steps": (
            ["compare", w / "garbage-steps", "--no-plot"], {},
            [f"{w / 'garbage-steps' / 'steps.csv'} is not an lfp_ref"], [],
        ),
        "eval-nan-checkpoint": (
            ["eval", w / "nan"], {},
            ["last.npz holds non-finite values in model/0.weight (1 value)"], ["good"],
        ),
        "resume-nan-checkpoint": (
            ["train", "--resume", w / "nan"], {},
            ["last.npz holds non-finite values in model/0.weight (1 value)"], ["good"],
        ),
        "export-nan-checkpoint": (
            ["export", w / "nan"], {}, ["holds non-finite values in model/0.weight"], [],
        ),
        # rules that need what only the command line can give
        "rule-zbox": (
            ["train", *TOY, "--rule", "zbox", "--out", w / "zbox"], {},
            ["--rule zbox needs the input bounds: add --rule-option low=0 --rule-option high=1"],
            ["lfp_ref.rules.get", "ZBox("],
        ),
        "rule-for-zbox": (
            ["train", *TOY, "--rule-for", "Dense=zbox", "--out", w / "zbox"], {},
            ["--rule-for needs the input bounds", '--rule-option \'zbox={"low": 0, "high": 1}\''],
            ["lfp_ref.rules.get"],
        ),
        "composite-zbox": (
            ["train", *TOY, "--composite", "EpsilonGammaBox", "--out", w / "zbox"], {},
            ["--composite EpsilonGammaBox needs the input bounds", "--rule-option low=0"],
            ["lfp_ref.composites"],
        ),
        # data
        "download-failed": (
            ["train", "--model", "toy", "--data", "mnist", "--download", "--out", w / "dl"],
            {**no_mnist, "LFP_REF_MIRROR": "http://127.0.0.1:9/"},
            ["could not download", "check the network"], ["add --download"],
        ),
        "user-data-nan": (
            ["train", "--model", "toy", "--data", "badinputs_user:nan_data", "--out", w / "u"], {},
            ["dataset 'blobs': x_train holds non-finite values (NaN or inf) in 1 of",
             "the first at index 3"], [],
        ),
        "user-model-nan": (
            ["train", "--model", "badinputs_user:nan_model", "--data", "blobs", "--out", w / "u"],
            {}, ["model factory 'badinputs_user:nan_model' built non-finite values",
                 "model/0.weight"], [],
        ),
        # --config
        "config-missing": (
            ["train", "--config", w / "none.toml"], {}, [f"cannot read --config {w / 'none.toml'}"],
            [],
        ),
        "config-not-toml": (
            ["train", "--config", w / "bad.toml"], {},
            [f"--config {w / 'bad.toml'} is not valid TOML"], [],
        ),
        "config-unknown-key": (
            ["train", "--config", w / "unknown.toml"], {}, ["unknown keys ['learning_rate']"], [],
        ),
        "config-wrong-type": (
            ["train", "--config", w / "wrong-type.toml", "--print-config"], {},
            ["lr must be a number, got 'fast'"], [],
        ),
        "config-with-resume": (
            ["train", "--resume", w / "good", "--config", w / "unknown.toml"], {},
            ["drop --config"], [],
        ),
        # extending a run
        "resume-fewer-epochs": (
            ["train", "--resume", w / "good", "--epochs", "1"], {},
            ["configured for 2 epochs; --epochs 1 would shorten it"], [],
        ),
        "resume-extend-onecycle": (
            ["train", "--resume", w / "onecycle", "--epochs", "3"], {},
            ["uses the onecycle schedule", "cannot be extended bit for bit"], [],
        ),
        "resume-with-other-options": (
            ["train", "--resume", w / "good", "--epochs", "3", "--lr", "0.5"], {},
            ["drop --lr (only --epochs may change"], [],
        ),
        # export
        "export-exists": (
            ["export", w / "good", "--out", w / "a-file"], {}, ["exists; add --overwrite"], [],
        ),
        "export-to-a-folder": (
            ["export", w / "good", "--out", w / "empty"], {}, ["is a folder; give a file name"], [],
        ),
        "export-unknown-format": (
            ["export", w / "good", "--format", "onnx"], {}, ["argument --format: invalid choice"],
            [],
        ),
        "export-safetensors-missing": (
            ["export", w / "good", "--format", "safetensors", "--out", w / "m.safetensors"], hide,
            ["--format safetensors needs the safetensors package: pip install safetensors"], [],
        ),
        "export-torch-missing": (
            ["export", w / "good", "--format", "torch", "--out", w / "m.pt"], hide,
            ["--format torch needs torch"], [],
        ),
        "export-not-a-run": (["export", w / "empty"], {}, ["is not a run folder"], []),
    }  # fmt: skip


CLI_CASES = list(_cli_cases(Path("w")))


@pytest.fixture(scope="module")
def cli_results(workspace):
    """All the bad calls at once, a few at a time (each pays the interpreter's start-up)."""
    cases = _cli_cases(workspace)
    results, running = {}, {}
    names = list(cases)
    while names or running:
        while names and len(running) < 4:
            name = names.pop(0)
            args, env, _, _ = cases[name]
            running[name] = subprocess.Popen(
                [*LFP_REF, *map(str, args)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(**env),
                cwd=workspace,
            )
        name = next(iter(running))
        proc = running.pop(name)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return results, cases


@pytest.mark.parametrize("name", CLI_CASES)
def test_bad_command_line_input_gives_one_error_line(cli_results, name):
    results, cases = cli_results
    _, _, fragments, absent = cases[name]
    assert_usage_error(results[name], *fragments, absent=absent)


def test_no_failed_command_left_a_run_behind(cli_results, workspace):
    for name in ("zbox", "dl", "u"):
        assert not (workspace / name).exists(), name


# --------------------------------------------------------------------------------------------
# the command line on read-only and full file systems


def test_out_on_a_read_only_file_system(tmp_path):
    (tmp_path / "source").mkdir()
    with read_only(tmp_path / "ro", tmp_path / "source") as ro:
        result = lfp_ref("train", *TOY, "--epochs", "1", "--out", ro / "run")
        assert_usage_error(
            result,
            f"cannot write {ro / 'run'} (Read-only file system)",
            "choose a folder you can write with --out",
        )


def test_resume_on_a_read_only_file_system(tmp_path):
    source = tmp_path / "source"
    result = lfp_ref("train", *TOY, "--epochs", "2", "--max-steps", "5", "--out", source / "run")
    assert result.returncode == 0, result.stderr
    with read_only(tmp_path / "ro", source) as ro:
        result = lfp_ref("train", "--resume", ro / "run")
        assert_usage_error(
            result, "(Read-only file system)", "copy the run folder somewhere writable"
        )


def test_explain_in_a_read_only_folder(tmp_path):
    pytest.importorskip("matplotlib", reason="explain's PNGs need matplotlib")
    (tmp_path / "source").mkdir()
    with read_only(tmp_path / "ro", tmp_path / "source") as ro:
        result = lfp_ref("explain", cwd=ro)
        assert_usage_error(
            result,
            "cannot write the PNGs to lfp-explain (Read-only file system)",
            "pass --out with a folder you can write, or --no-plots",
        )
        assert "one LFP-SGD step" in result.stdout  # the trace itself was printed
        assert lfp_ref("explain", "--no-plots", cwd=ro).returncode == 0


def test_a_full_disk_during_training_keeps_the_last_checkpoint(tmp_path):
    """The disk fills up in the third epoch: one error line naming the intact checkpoint;
    after space is freed, --resume finishes the run exactly as if nothing had happened."""
    args = [*TOY, "--epochs", "6", "--keep-checkpoints"]
    straight = tmp_path / "straight"
    assert lfp_ref("train", *args, "--out", straight).returncode == 0
    with small_disk(tmp_path / "disk", "120k") as disk:
        run = disk / "run"
        result = lfp_ref("train", *args, "--out", run)
        line = assert_usage_error(
            result, "no space left on the device writing", "free some space, then continue "
            "with ", f"lfp-ref train --resume {run}",
        )  # fmt: skip
        assert f"the last checkpoint {run / 'last.npz'} (step " in line
        state = ckpt.load(run / "last.npz")  # readable, finite, named in the message
        assert f"(step {state['trainer/step']}) is intact" in line
        assert 0 < state["trainer/epoch"] < 6
        assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]
        again = lfp_ref("train", "--resume", run)  # the disk is still full
        assert_usage_error(again, "no space left on the device")
        assert ckpt.load(run / "last.npz")["trainer/step"] == state["trainer/step"]
        assert _run(["mount", "-o", "remount,size=20m", str(disk)]).returncode == 0
        resumed = lfp_ref("train", "--resume", run)
        assert resumed.returncode == 0, resumed.stderr
        _assert_same_run(straight, run)
        assert len(list(run.glob("epoch-*.npz"))) == 6


def test_a_full_disk_during_resume(tmp_path):
    args = [*TOY, "--epochs", "2", "--checkpoint-every", "5"]
    straight = tmp_path / "straight"
    assert lfp_ref("train", *args, "--out", straight).returncode == 0
    with small_disk(tmp_path / "disk", "400k") as disk:
        run = disk / "run"
        result = lfp_ref("train", *args, "--max-steps", "12", "--out", run)
        assert result.returncode == 0, result.stderr
        with open(run / "steps.csv", "a") as file:  # rows the checkpoint (step 12) has not seen
            file.write("13,0.3,0.02,1.0,0.1,0.5,,\n")
        filler = _fill(disk)
        result = lfp_ref("train", "--resume", run)
        assert_usage_error(result, "no space left on the device", "--resume")
        assert ckpt.load(run / "last.npz")["trainer/step"] == 12
        filler.unlink()
        resumed = lfp_ref("train", "--resume", run)
        assert resumed.returncode == 0, resumed.stderr
        _assert_same_run(straight, run)


# --------------------------------------------------------------------------------------------
# the training side: exact exception types


def test_output_folder_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="the output folder .*file is a file; choose a folder"):
        Trainer(TrainConfig(model="toy", data="blobs"), out=tmp_path / "file", **quiet())


def test_model_factory_with_nan_parameters(tmp_path, monkeypatch):
    (tmp_path / "badinputs_lib.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = TrainConfig(model="badinputs_lib:nan_model", data="blobs")
    with pytest.raises(ConfigError) as info:
        Trainer(config, out=tmp_path / "run", **quiet())
    assert "built non-finite values (NaN or inf) in model/0.weight (1 value)" in str(info.value)
    assert not (tmp_path / "run").exists()  # nothing written, no "good" checkpoint of NaN


@pytest.mark.parametrize("split", ["x_train", "x_test"])
def test_dataset_with_non_finite_inputs(split):
    data = load("blobs")
    getattr(data, split)[2, 0] = np.nan
    with pytest.raises(ConfigError, match=f"{split} holds non-finite values .* at index 2"):
        Trainer(TrainConfig(model="toy", data="blobs"), data=data, **quiet())


def test_checkpoints_are_never_written_from_non_finite_state(tmp_path):
    state = {"model/0.weight": np.array([[1.0, np.nan]]), "trainer/step": 3}
    with pytest.raises(ckpt.NonFiniteStateError, match=r"model/0\.weight \(1 value\)"):
        ckpt.save(tmp_path / "last.npz", state)
    assert not list(tmp_path.iterdir())
    state = {"optimizer/momentum/0.weight": np.array([np.inf, 1.0])}
    with pytest.raises(ckpt.NonFiniteStateError, match="optimizer/momentum/0.weight"):
        ckpt.save(tmp_path / "last.npz", state)


def test_a_non_finite_checkpoint_is_refused_on_resume(tmp_path):
    config = TrainConfig(model="toy", data="blobs", epochs=2)
    fit(config, out=tmp_path, max_steps=3, **quiet())
    state = ckpt.load(tmp_path / "last.npz")
    state["model/2.bias"][1] = np.inf
    np.savez(tmp_path / "last.npz", format=np.array(ckpt.FORMAT), **state)
    with pytest.raises(ckpt.NonFiniteStateError) as info:
        Trainer.resume(tmp_path, **quiet())
    assert isinstance(info.value, ckpt.CheckpointError)
    assert "holds non-finite values in model/2.bias (1 value)" in str(info.value)


def test_a_diverged_run_never_calls_a_non_finite_checkpoint_good(tmp_path):
    config = TrainConfig(model="toy", data="blobs", lr=1e30, clip=None, checkpoint_every=1)
    trainer = Trainer(config, out=tmp_path, **quiet())
    with pytest.raises(TrainingDiverged) as info:
        trainer.run()
    path, step = trainer.last_checkpoint
    assert f"the last good checkpoint {path} (step {step}) is intact" in str(info.value)
    assert not ckpt.non_finite_entries(ckpt.load(path))


@pytest.mark.parametrize(
    ("epochs", "changes", "message"),
    [
        (1, {}, "configured for 2 epochs; --epochs 1 would shorten it"),
        (0, {}, "epochs must be a positive int, got 0"),
        (3, {"scheduler": "onecycle"}, "uses the onecycle schedule"),
    ],
)
def test_extending_a_run_that_cannot_be_extended(tmp_path, epochs, changes, message):
    fit(TrainConfig(model="toy", data="blobs", epochs=2, **changes), out=tmp_path, **quiet())
    with pytest.raises(ConfigError, match=message):
        Trainer.resume(tmp_path, epochs=epochs, **quiet())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr = = 1", "the TOML text is not valid TOML"),
        ("learning_rate = 0.1", r"unknown keys \['learning_rate'\]"),
        ("[model]\nname = 'toy'", "model must be a zoo name"),
    ],
)
def test_bad_toml_configs(text, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_toml(text).validated()


def test_a_config_toml_cannot_hold_null():
    with pytest.raises(ConfigError, match="model_options.hidden is None, which TOML cannot hold"):
        TrainConfig(model="toy", model_options={"hidden": None}).to_toml()


def test_read_run_refuses_foreign_csv_files(tmp_path):
    fit(TrainConfig(model="toy", data="blobs", epochs=1), out=tmp_path, **quiet())
    (tmp_path / "metrics.csv").write_text("epoch;step\n1;2\n")
    with pytest.raises(ConfigError, match="its header is 'epoch;step', expected 'epoch,step,lr"):
        read_run(tmp_path)


def test_config_json_records_an_absent_git_commit_outside_a_checkout(tmp_path, monkeypatch):
    from lfp_ref.train import runlog

    monkeypatch.setattr(runlog, "git_commit", lambda timeout=5.0: None)
    fit(TrainConfig(model="toy", data="blobs", epochs=1), out=tmp_path, **quiet())
    info = json.loads((tmp_path / "config.json").read_text())["info"]
    assert "git_commit" not in info and "git_dirty" not in info
    assert {
        "python_version",
        "numpy_version",
        "numba_version",
        "command_line",
        "started_at",
    } <= set(info)
