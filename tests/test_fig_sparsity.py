"""figures/fig_sparsity.py in smoke mode: its files, Gini coefficients in [0, 1], the pruning
curves start at the runs' own final test accuracy, fall at 99 % and are complete; a second call
reuses the finished runs."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("matplotlib", reason="the figures need matplotlib (lfp_ref[plot])")
pytest.importorskip("sklearn", reason="smoke mode trains on scikit-learn's 8x8 digits")


def read(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_fig_sparsity_smoke(tmp_path):
    from figures import fig_sparsity

    assert fig_sparsity.main(["--smoke", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "sparsity" / "smoke"
    assert (folder / "sparsity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = {
        (r["model"], r["method"]): r for r in read(folder / "runs" / "results.csv")
    }  # the sweep's table: zoo names
    assert set(results) == {(m, t) for m in ("mlp", "small-cnn") for t in ("lfp", "gd")}

    weights = read(folder / "weights.csv")
    assert {(r["model"], r["method"]) for r in weights} == {
        (m, t) for m in ("mlp", "lenet") for t in ("lfp", "gd")
    }
    for row in weights:
        assert 0 <= float(row["gini"]) <= 1
        assert float(row["q0"]) <= float(row["q0.5"]) <= float(row["q1"])
    mlp_layers = [r["layer"] for r in weights if (r["model"], r["method"]) == ("mlp", "lfp")]
    assert mlp_layers == ["1.weight", "3.weight", "5.weight", "all"]  # Flatten first

    pruning = read(folder / "pruning.csv")
    summary = json.loads((folder / "summary.json").read_text())
    zoo_name = {"mlp": "mlp", "lenet": "small-cnn"}
    for model in ("mlp", "lenet"):
        for method in ("lfp", "gd"):
            final = float(results[zoo_name[model], method]["final_test_acc"])
            assert summary["models"][model][method]["test_acc"] == final
            for scope in ("global", "layer"):
                curve = [
                    r
                    for r in pruning
                    if (r["model"], r["method"], r["scope"]) == (model, method, scope)
                ]
                assert [float(r["rate"]) for r in curve] == list(fig_sparsity.RATES)
                acc = {float(r["rate"]): float(r["test_acc"]) for r in curve}
                assert acc[0.0] == final  # the reloaded, unpruned model is the run's
                assert acc[0.99] < acc[0.0] - 0.1  # 99 % of the weights gone hurts
                for r in curve:  # the pruned share of the weights (at least: already-zero ones)
                    assert float(r["zero_fraction"]) >= float(r["rate"]) - 0.005
    # a second call trains nothing and redraws the same numbers
    assert fig_sparsity.main(["--smoke", "--out", str(tmp_path)]) == 0
    assert read(folder / "pruning.csv") == pruning
