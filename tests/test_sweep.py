"""lfp_ref.sweep and ``lfp-ref sweep``: grid files, point folders named from their overrides, the
results table, skipping finished points and resuming started ones (also after the sweep process
was killed), diverged and failing points, the local process pool and a Dask LocalCluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lfp_ref import sweep as sw
from lfp_ref.cli import main as cli_main
from lfp_ref.train import TrainConfig, Trainer, fit, read_run
from lfp_ref.train import checkpoint as ckpt

BASE = TrainConfig(
    model="toy",
    data="blobs",
    data_options={"n_samples": 80},
    epochs=2,
    batch_size=16,
    lr=0.01,
    momentum=0.9,
    clip=None,
    dtype="float64",
)
GRID = {"method": ["lfp", "gd"], "lr": [1e-3, 1e-2]}

GRID_FILE = """
[base]
model = "toy"
data = "blobs"
epochs = 2
batch_size = 16
momentum = 0.9
clip = "none"
dtype = "float64"
[base.data_options]
n_samples = 80

[grid]
method = ["lfp", "gd"]
lr = [0.001, 0.01]

[[points]]
method = "gd"
lr = 0.1
"data_options.seed" = 3
"""

# the columns that depend on the clock
CLOCK = ("wall_time",)


def quiet(**kwargs):
    return dict(progress=False, log=lambda line: None, **kwargs)


def comparable(rows):
    return [{k: v for k, v in row.items() if k not in CLOCK} for row in rows]


# --------------------------------------------------------------------------------------------
# points and grid files


def test_point_names_are_sorted_readable_and_distinct():
    assert sw.point_name({}) == "base"
    assert sw.point_name({"method": "lfp", "lr": 0.001}) == "lr=0.001__method=lfp"
    assert sw.point_name({"lr": 0.001, "method": "lfp"}) == "lr=0.001__method=lfp"
    assert sw.point_name({"data_options.seed": 2, "reward": "softmax_loss"}) == (
        "data_options.seed=2__reward=softmax_loss"
    )
    assert sw.point_name({"clip": None, "keep_checkpoints": True}) == (
        "clip=none__keep_checkpoints=true"
    )
    odd = [
        {"rule_for": {"Conv2d": "zplus"}},
        {"rule_for": {"Conv2d": "zplus", "0": "flat"}},
        {"data": "a__b"},
        {"data": "a b"},
        {"data": "a-b"},
    ]
    names = [sw.point_name(o) for o in odd]
    assert len(set(names)) == len(names)
    assert names[0].startswith("rule_for=Conv2d-zplus-") and len(names[0]) == 32
    assert names[4] == "data=a-b"  # plain text stays as it is
    long = sw.point_name({"model_options": {"x" * 200: 1}})
    assert len(long) <= 120
    assert sw.point_name({"model_options": {"x" * 200: 1}}) == long  # deterministic


def test_the_grid_file_expands_to_the_grid_then_the_points():
    spec = sw.parse_grid(GRID_FILE)
    points = spec.expand()
    assert [p.overrides for p in points] == [
        {"method": "lfp", "lr": 0.001},
        {"method": "lfp", "lr": 0.01},
        {"method": "gd", "lr": 0.001},
        {"method": "gd", "lr": 0.01},
        {"method": "gd", "lr": 0.1, "data_options.seed": 3},
    ]
    assert spec.base.clip is None and spec.base.data_options == {"n_samples": 80}
    last = points[-1].config
    assert last.data_options == {"n_samples": 80, "seed": 3} and last.method == "gd"
    assert points[0].config == TrainConfig(**{**BASE.__dict__, "lr": 0.001}).validated()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[grid]\nlearning_rate = [1]", "'learning_rate' is not a TrainConfig field"),
        ("[grid]\nlr = []", "must be a non-empty list"),
        ("[grid]\n'lr.x' = [1]", "a dotted key sets an entry of a dict field"),
        ("[base]\nmodel = 'toy'", "neither a \\[grid\\] nor \\[\\[points\\]\\]"),
        ("[base]\nepochs = 0\n[grid]\nlr = [1]", "epochs must be a positive int"),
        ("[grid]\nmethod = ['lfp', 'nope']", "point method=nope: method must be one of"),
        ("[grids]\nlr = [1]", "unknown tables \\['grids'\\]"),
        ("[grid\nlr = [1]", "not valid TOML"),
    ],
)
def test_bad_grid_files_say_what_is_wrong(text, message):
    with pytest.raises(sw.SweepError, match=message):
        sw.parse_grid(text).expand()


# --------------------------------------------------------------------------------------------
# running a sweep in this process


def test_a_tiny_sweep_runs_and_its_table_is_right(tmp_path):
    result = sw.run_sweep(sw.Sweep(BASE, GRID), tmp_path, workers=0, progress=False)
    assert result.columns == ["method", "lr"] and len(result.rows) == 4
    assert result.ran == [p.name for p in sw.Sweep(BASE, GRID).expand()] and not result.failed
    for row in result.rows:
        config = TrainConfig(**{**BASE.__dict__, "method": row["method"], "lr": row["lr"]})
        history = fit(config, **quiet()).history  # the same run, in memory
        assert row["status"] == "done" and row["epochs_done"] == 2
        assert row["final_test_acc"] == history[-1]["test_acc"]
        assert row["final_train_loss"] == history[-1]["train_loss"]
        assert row["best_test_acc"] == max(h["test_acc"] for h in history)
        assert row["wall_time"] == pytest.approx(
            sum(h["wall_time"] for h in read_run(tmp_path / row["run_dir"])["metrics"])
        )
        assert row["run_dir"] == sw.point_name({"method": row["method"], "lr": row["lr"]})
        assert (tmp_path / row["run_dir"] / sw.POINT_FILE).is_file()
    # results.csv holds the same rows; sweep.json the sweep
    assert comparable(sw.read_results(tmp_path / sw.RESULTS_FILE)) == comparable(result.rows)
    assert json.loads((tmp_path / sw.SWEEP_FILE).read_text())["grid"] == GRID
    table = result.table().splitlines()
    assert table[0].split() == [
        "method",
        "lr",
        "status",
        "epochs",
        "test_acc",
        "best_test_acc",
        "time_s",
    ]
    assert len(table) == 5 and table[1].split()[:3] == ["lfp", "0.001", "done"]
    # a point is a normal run folder
    trainer = Trainer.open(tmp_path / result.rows[0]["run_dir"], **quiet())
    assert trainer.done and trainer.config.lr == 0.001


def test_finished_points_are_skipped_and_started_ones_resumed(tmp_path):
    spec = sw.Sweep(BASE, GRID)
    points = spec.expand()
    straight = sw.run_sweep(spec, tmp_path / "straight", workers=0, progress=False)
    # one point finished, one stopped after 3 steps, one without a checkpoint, one not started
    sw.run_sweep(points[:1], tmp_path / "cut", workers=0, progress=False)
    fit(points[1].config, out=tmp_path / "cut" / points[1].name, max_steps=3, **quiet())
    fit(points[2].config, out=tmp_path / "cut" / points[2].name, max_steps=1, **quiet())
    (tmp_path / "cut" / points[2].name / "last.npz").unlink()  # killed before a checkpoint
    assert [sw.point_state(tmp_path / "cut" / p.name, p.config) for p in points] == [
        "done",
        "partial",
        "partial",
        "new",
    ]
    marker = tmp_path / "cut" / points[0].name / sw.POINT_FILE
    before = marker.stat().st_mtime_ns
    resumed = sw.run_sweep(spec, tmp_path / "cut", workers=0, progress=False)
    assert resumed.skipped == [points[0].name] and resumed.ran == [p.name for p in points[1:]]
    assert marker.stat().st_mtime_ns == before
    assert comparable(resumed.rows) == comparable(straight.rows)
    for point in points:  # bit for bit, the resumed ones included
        a = ckpt.load(tmp_path / "straight" / point.name / "last.npz")
        b = ckpt.load(tmp_path / "cut" / point.name / "last.npz")
        for key, value in a.items():
            if isinstance(value, np.ndarray):
                assert value.tobytes() == b[key].tobytes(), (point.name, key)
    again = sw.run_sweep(spec, tmp_path / "cut", workers=0, progress=False)
    assert again.ran == [] and comparable(again.rows) == comparable(straight.rows)


def test_diverged_and_failing_points(tmp_path):
    spec = sw.Sweep(
        BASE,
        points=[{"lr": 1e300}, {"lr": 0.01}, {"data_options.n_samples": 1}],  # n_samples >= 2
    )
    messages = []
    result = sw.run_sweep(spec, tmp_path, workers=0, progress=False, log=messages.append)
    diverged, fine, failed = result.rows
    assert diverged["status"] == "diverged" and diverged["final_test_acc"] is None
    marker = json.loads((tmp_path / diverged["run_dir"] / sw.POINT_FILE).read_text())
    assert marker["status"] == "diverged" and "non-finite" in marker["error"]
    assert fine["status"] == "done"
    assert failed["status"] == "failed" and list(result.failed) == [failed["run_dir"]]
    assert "n_samples" in result.failed[failed["run_dir"]] and len(messages) == 1
    again = sw.run_sweep(spec, tmp_path, workers=0, progress=False, log=messages.append)
    assert again.skipped == [diverged["run_dir"], fine["run_dir"]]
    assert again.ran == [failed["run_dir"]]  # the failed point is tried again


def test_a_folder_of_another_configuration_is_refused(tmp_path):
    sw.run_sweep(sw.Sweep(BASE, {"lr": [0.01]}), tmp_path, workers=0, progress=False)
    changed = sw.Sweep(TrainConfig(**{**BASE.__dict__, "epochs": 3}), {"lr": [0.01]})
    with pytest.raises(sw.SweepError, match="epochs: 2 \\(folder\\) vs 3 \\(sweep\\)"):
        sw.run_sweep(changed, tmp_path, workers=0, progress=False)


# --------------------------------------------------------------------------------------------
# the command line


def test_the_command_line_runs_lists_and_reports(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID_FILE)
    out = tmp_path / "runs"
    assert cli_main(["sweep", str(grid), "--out", str(out), "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("\nnew ") == 4 and "5 points: 5 new" in listing
    assert cli_main(["sweep", str(grid), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "5 points: 5 run now, 0 already finished, 0 failed" in text
    assert text.splitlines()[0].split()[:4] == ["method", "lr", "data_options.seed", "status"]
    point = out / "data_options.seed=3__lr=0.1__method=gd"
    assert cli_main(["eval", str(point)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert cli_main(["sweep", str(grid), "--out", str(out), "--dry-run"]) == 0
    assert "5 points: 5 done" in capsys.readouterr().out
    assert cli_main(["sweep", str(tmp_path / "missing.toml"), "--out", str(out)]) == 2
    assert "cannot read the grid file" in capsys.readouterr().err


def test_the_help_documents_the_grid_file(capsys):
    with pytest.raises(SystemExit):
        cli_main(["sweep", "--help"])
    text = capsys.readouterr().out
    for part in ("[base]", "[grid]", "[[points]]", '"data_options.seed"', "--scheduler"):
        assert part in text


def _start(grid, out):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lfp_ref.cli",
            "sweep",
            str(grid),
            "--out",
            str(out),
            "--workers",
            "1",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )


def test_a_killed_sweep_continues_where_it_stopped(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(
        GRID_FILE.replace("n_samples = 80", "n_samples = 1500").replace("epochs = 2", "epochs = 4")
    )
    points = sw.load_grid(grid).expand()
    reference = _start(grid, tmp_path / "straight")
    assert reference.wait(timeout=240) == 0, reference.stderr.read().decode()
    proc = _start(grid, tmp_path / "killed")
    deadline = time.monotonic() + 120
    first = tmp_path / "killed" / points[0].name / sw.POINT_FILE
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker
    proc.wait(timeout=30)
    assert first.exists(), proc.stderr.read().decode()
    finished = [p.name for p in points if (tmp_path / "killed" / p.name / sw.POINT_FILE).exists()]
    assert len(finished) < len(points)
    stamps = {n: (tmp_path / "killed" / n / "metrics.csv").stat().st_mtime_ns for n in finished}
    resumed = _start(grid, tmp_path / "killed")
    stdout, stderr = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, stderr.decode()
    assert f"{len(finished)} already finished" in stdout.decode()
    for name, stamp in stamps.items():  # not run again
        assert (tmp_path / "killed" / name / "metrics.csv").stat().st_mtime_ns == stamp
    expected = sw.read_results(tmp_path / "straight" / sw.RESULTS_FILE)
    assert comparable(sw.read_results(tmp_path / "killed" / sw.RESULTS_FILE)) == comparable(
        expected
    )


# --------------------------------------------------------------------------------------------
# executors


def _worker_threads():
    import numba

    return {key: os.environ.get(key) for key in sw.WORKER_ENV} | {"numba": numba.get_num_threads()}


def test_local_workers_run_one_thread_each_and_give_the_same_table(tmp_path):
    before = {key: os.environ.get(key) for key in sw.WORKER_ENV}
    with sw.local_executor(1) as pool:
        seen = pool.submit(_worker_threads).result(timeout=120)
    assert seen == {**sw.WORKER_ENV, "numba": 1}
    assert {key: os.environ.get(key) for key in sw.WORKER_ENV} == before  # restored here
    spec = sw.Sweep(BASE, GRID)
    pooled = sw.run_sweep(spec, tmp_path / "pool", workers=2, progress=False)
    serial = sw.run_sweep(spec, tmp_path / "serial", workers=0, progress=False)
    assert comparable(pooled.rows) == comparable(serial.rows)


def test_a_dask_cluster_runs_the_sweep(tmp_path):
    distributed = pytest.importorskip(
        "distributed", reason="the Dask path needs distributed (pip install 'lfp_ref[dask]')"
    )
    spec = sw.Sweep(BASE, GRID)
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        on_dask = sw.run_sweep(
            spec, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False
        )
        assert on_dask.ran and not on_dask.failed
        with distributed.Client(cluster) as client:  # a Client is taken as it is
            again = sw.run_sweep(spec, tmp_path / "dask", scheduler=client, progress=False)
        assert again.ran == []
    serial = sw.run_sweep(spec, tmp_path / "serial", workers=0, progress=False)
    assert comparable(on_dask.rows) == comparable(serial.rows)
