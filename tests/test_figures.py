"""The figure scripts (figures/fig_*.py): each one's smoke mode runs and writes its PNG and the
numbers behind it with the expected columns and rows; the single-neuron figures' claims hold;
the blobs result of the toy figure is pinned."""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("matplotlib", reason="the figures need matplotlib (lfp_ref[plot])")


def figure(name):
    return importlib.import_module(f"figures.fig_{name}")


def read(path):
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return rows


def columns(path):
    with open(path, newline="") as file:
        return next(csv.reader(file))


def smoke(name, tmp_path):
    """Run the script's smoke mode; returns its output folder."""
    assert figure(name).main(["--smoke", "--out", str(tmp_path)]) == 0
    folder = tmp_path / figure(name).NAME / "smoke"
    png = folder / f"{figure(name).NAME}.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return folder


STATS = ["n", "mean", "std", "min", "max", "diverged"]


def test_toy(tmp_path):
    folder = smoke("toy", tmp_path)
    assert columns(folder / "lr_grid.csv") == ["data", "method", "lr", *STATS]
    assert len(read(folder / "lr_grid.csv")) == 3 * 2 * 2  # data sets x methods x lrs
    best = read(folder / "best.csv")
    assert [(r["data"], r["method"]) for r in best] == [
        (d, m) for d in ("blobs", "circles", "swirls") for m in ("lfp", "gd")
    ]
    assert columns(folder / "best.csv")[:6] == ["data", "method", "best_lr", "runs", "mean", "std"]
    assert columns(folder / "curves.csv") == [
        "data",
        "method",
        "lr",
        "epoch",
        "mean_test_acc",
        "std_test_acc",
        "runs",
    ]
    assert len(read(folder / "weight_fractions.csv")) == 6 * 101
    assert len(json.loads((folder / "networks.json").read_text())) == 6
    assert len(read(folder / "runs" / "results.csv")) == 12  # one run folder per point


def test_toy_activations(tmp_path):
    folder = smoke("toy_activations", tmp_path)
    assert columns(folder / "lr_grid.csv") == ["data", "activation", "method", "lr", *STATS]
    assert len(read(folder / "lr_grid.csv")) == 3 * 5 * 2 * 2
    best = read(folder / "best.csv")
    assert len(best) == 3 * 5 * 2
    assert {"mean", "std", "best_run", "best_run_lr", "paper_best_of_5"} <= set(best[0])
    step = [r for r in best if r["activation"] == "step" and r["data"] == "circles"]
    assert [r["paper_best_of_5"] for r in step] == ["0.722", "0.62"]


def test_neuron_weight_space(tmp_path):
    folder = smoke("neuron_weight_space", tmp_path)
    rows = read(folder / "trajectories.csv")
    assert columns(folder / "trajectories.csv") == [
        "method",
        "init",
        "step",
        "w1",
        "w2",
        "mean_reward",
        "mean_bce",
    ]
    assert len(rows) == 2 * 7 * 9  # methods x inits x (8 steps + the start)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["lfp_zero_weights_stay_zero"] is True  # exactly 0.0 at every step
    assert summary["gd_zero_weights_stay_zero"] is False
    from_zero = [float(r["w1"]) for r in rows if r["method"] == "lfp" and r["init"] == "0,4"]
    assert from_zero == [0.0] * 9


def test_silu_escape(tmp_path):
    folder = smoke("silu_escape", tmp_path)
    assert len(read(folder / "trajectories.csv")) == 2 * 2 * 2 * 11
    summary = json.loads((folder / "summary.json").read_text())
    escape = {
        (r["method"]): r
        for r in summary
        if r["objective"] == "maximise" and r["init"] == [-1.0, -1.0]
    }
    assert escape["lfp"]["y_start"] < 0 < escape["lfp"]["y_final"]
    assert escape["lfp"]["first_step_with_output_of_the_wanted_sign"] <= 5
    assert escape["gd"]["first_step_with_output_of_the_wanted_sign"] is None
    assert escape["gd"]["y_final"] < 0


def test_misclassification(tmp_path):
    folder = smoke("misclassification", tmp_path)
    assert columns(folder / "lr_grid.csv") == ["reward", "lr", *STATS]
    assert len(read(folder / "lr_grid.csv")) == 2 * 2
    assert [r["reward"] for r in read(folder / "best.csv")] == ["misclassification", "softmax_loss"]


def test_rules(tmp_path):
    folder = smoke("rules", tmp_path)
    final = read(folder / "final.csv")
    assert [r["run"] for r in final] == [r[0] for r in figure("rules").RUNS]
    assert columns(folder / "final.csv")[:6] == [
        "run",
        "rule",
        "placement",
        "seeds",
        "mean_test_acc",
        "std_test_acc",
    ]
    assert len(read(folder / "curves.csv")) == 8  # 8 runs x 1 epoch


def test_lr_scale(tmp_path):
    folder = smoke("lr_scale", tmp_path)
    rows = read(folder / "ratios.csv")
    assert [r["data"] for r in rows] == ["blobs", "circles", "swirls"]
    assert {
        "measured_ratio",
        "paper_ratio",
        "predicted_ratio_init",
        "predicted_ratio_step_norms",
    } <= set(rows[0])
    # the toy figure's runs were trained once, for this figure, in the same output folder
    assert (tmp_path / "toy" / "smoke" / "runs" / "results.csv").is_file()


def test_lfp_reaches_100_percent_on_blobs_at_3e_4():
    """The paper: LFP 100 % on blobs at learning rate 3e-4. True for this seed (data seed 1,
    init 2); of the 25 runs of figure 1 at 3e-4, 9 reach 100 %, one initialisation stays at
    chance in 10 epochs, and the default seed (0, 0) ends at 97.5 %."""
    from lfp_ref.train import fit

    config = dataclasses.replace(
        figure("toy").BASE, data="blobs", epochs=10, lr=3e-4, seed=2, data_options={"seed": 1}
    )
    history = fit(config, progress=False, log=lambda line: None).history
    assert history[-1]["test_acc"] == 1.0
    default = fit(
        dataclasses.replace(config, seed=0, data_options={"seed": 0}),
        progress=False,
        log=lambda line: None,
    ).history
    assert default[-1]["test_acc"] == pytest.approx(0.975)
