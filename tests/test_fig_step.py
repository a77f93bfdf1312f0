"""figures/fig_step.py: the step networks are the notebooks' (an output Step on the MLP only,
noise before every parameterised layer and after the MLP's output), the loader scales to
[-1, 1], and the smoke mode writes its PNG and numbers with the claims that can be checked in
seconds: all runs of a model start from the same weights, GD on the all-Step MLP gets no
gradient (its weights do not move), noise changes LFP's run, the zero fractions are fractions."""

from __future__ import annotations

import csv
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("matplotlib", reason="the figures need matplotlib (lfp_ref[plot])")


def fig_step():
    return importlib.import_module("figures.fig_step")


def read(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def kinds(model):
    return [type(layer).__name__ for layer in model]


def test_step_nets_are_the_notebooks():
    fig = fig_step()
    mlp = fig.step_net(10, (1, 28, 28), 0, np.float32, arch="mlp")
    assert kinds(mlp) == ["Flatten", "Dense", "Step", "Dense", "Step", "Dense", "Step"]
    assert [p.shape for p in mlp.parameters().values()] == [
        (120, 784), (120,), (84, 120), (84,), (10, 84), (10,)
    ]  # fmt: skip
    noisy = fig.step_net(10, (1, 28, 28), 0, np.float32, arch="mlp", sigma=0.1)
    assert kinds(noisy) == [
        "Flatten", "GaussianNoise", "Dense", "Step", "GaussianNoise", "Dense", "Step",
        "GaussianNoise", "Dense", "Step", "GaussianNoise",
    ]  # fmt: skip
    for a, b in zip(mlp.parameters().values(), noisy.parameters().values()):
        np.testing.assert_array_equal(a, b)
    lenet = fig.step_net(10, (1, 28, 28), 0, np.float32, arch="lenet", sigma=0.1)
    names = kinds(lenet)
    assert names[-2:] == ["GaussianNoise", "Dense"]  # no Step on the LeNet's output
    assert names.count("Step") == 4 and names.count("GaussianNoise") == 5
    assert names.count("Dropout") == 2
    with pytest.raises(ValueError, match="arch must be one of mlp, lenet"):
        fig.step_net(10, (1, 28, 28), 0, np.float32, arch="vgg")


def test_loader_scales_to_plus_minus_one():
    data = fig_step().images_pm1("digits", size=28)
    assert data.x_train.shape[1:] == (1, 28, 28)
    assert data.x_train.min() == -1.0 and data.x_train.max() == 1.0
    # the 8x8 digits repeated 3x3 and padded by 2: the border is background (-1)
    assert (data.x_train[:, :, :2, :] == -1.0).all() and (data.x_train[:, :, -2:, :] == -1.0).all()


def test_slope_is_the_least_squares_slope_of_the_last_epochs():
    slope = fig_step().slope
    assert slope([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], last=3) == pytest.approx(0.1)
    assert slope([1, 2, 3, 4], [0.5, 0.1, 0.2, 0.2], last=2) == pytest.approx(0.0)
    assert slope([1], [0.3]) is None


def test_smoke(tmp_path):
    fig = fig_step()
    assert fig.main(["--smoke", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "step" / "smoke"
    png = folder / "step.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    final = read(folder / "final.csv")
    assert [(r["model"], r["method"], float(r["sigma"])) for r in final] == [
        (m, method, s) for m in ("lenet", "mlp") for method in ("lfp", "gd") for s in (0.0, 0.1)
    ]
    for row in final:
        assert row["status"] == "done" and int(row["epochs"]) == 2
        for key in ("initial_test_acc", "final_test_acc", "best_test_acc"):
            assert 0.0 <= float(row[key]) <= 1.0
    zeros = read(folder / "zeros.csv")
    assert zeros and all(0.0 <= float(r["zero_fraction"]) <= 1.0 for r in zeros)
    for model, steps in (("mlp", 3), ("lenet", 4)):
        rows = [r for r in zeros if r["model"] == model]
        assert {r["layer"] for r in rows} == {f"step{k}" for k in range(1, steps + 1)}
        assert {int(r["epoch"]) for r in rows} == {0, 1, 2}  # the initial model and 2 epochs
    curves = read(folder / "curves.csv")
    assert len(curves) == 8 * 2
    summary = json.loads((folder / "summary.json").read_text())
    runs = summary["runs"]
    for model in ("mlp", "lenet"):
        keys = [f"{model}/{m}/sigma={s}" for m in ("lfp", "gd") for s in ("0", "0.1")]
        # every run of a model starts from the same weights
        assert len({runs[k]["initial_weights_digest"] for k in keys}) == 1
        # LFP moves the weights, and the noise changes where they go
        lfp_plain, lfp_noisy = runs[f"{model}/lfp/sigma=0"], runs[f"{model}/lfp/sigma=0.1"]
        assert lfp_plain["final_weights_digest"] != lfp_plain["initial_weights_digest"]
        assert lfp_noisy["final_weights_digest"] != lfp_plain["final_weights_digest"]
    # the MLP has a Step after every layer: GD gets no gradient, its weights stay as they were
    for sigma in ("0", "0.1"):
        gd = runs[f"mlp/gd/sigma={sigma}"]
        assert gd["final_weights_digest"] == gd["initial_weights_digest"]
        assert gd["test_acc"] == [gd["initial_test_acc"]] * 2
    # the LeNet's output layer has no Step: GD trains it
    gd = runs["lenet/gd/sigma=0"]
    assert gd["final_weights_digest"] != gd["initial_weights_digest"]
    # a rerun skips the finished runs and writes the same numbers
    assert fig.main(["--smoke", "--out", str(tmp_path)]) == 0
    assert read(folder / "final.csv") == final
