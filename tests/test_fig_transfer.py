"""figures/fig_transfer.py in smoke mode: it writes its PNG, curves.csv and summary.json with
six curves (LFP and GD: fine-tuned all layers, dense head only, from scratch), the fine-tuned
runs start from the pretrained weights, the head-only runs keep the pretrained convolutions bit
for bit while their head moves, and a rerun trains nothing."""

from __future__ import annotations

import csv
import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("matplotlib", reason="the figures need matplotlib (lfp_ref[plot])")
pytest.importorskip("sklearn", reason="smoke mode pretrains on the digits (scikit-learn)")

from lfp_ref.data import DatasetNotFoundError, load  # noqa: E402
from lfp_ref.train import checkpoint as ckpt  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    try:
        load("fashion-mnist")
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST not found (apt-get install dataset-fashion-mnist)")
    figure = importlib.import_module("figures.fig_transfer")
    out = tmp_path_factory.mktemp("figures")
    assert figure.main(["--smoke", "--out", str(out)]) == 0
    return figure, out, out / "transfer" / "smoke"


def test_files_and_six_curves(smoke):
    figure, _, folder = smoke
    png = folder / "transfer.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(folder / "curves.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    curves = {(r["method"], r["regime"]) for r in rows}
    assert curves == {(m, r) for m in ("lfp", "gd") for r in ("all", "head", "scratch")}
    epochs = figure.MODE_SETTINGS["smoke"]["target"]["epochs"]
    assert len(rows) == 6 * (epochs + 1)  # epoch 0 (the starting model) and each epoch
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["frozen_parameters_unchanged"] is True
    assert summary["head_layers"] == ["7", "10", "13"]
    runs = summary["runs"]
    assert len(runs) == 6 and all(0.0 <= r["final_test_acc"] <= 1.0 for r in runs.values())
    # the four fine-tuned runs start from the same (pretrained) model, the two others from the
    # seed's: different starting accuracies on the target's test set
    starts = {key: run["start_test_acc"] for key, run in runs.items()}
    assert len({starts[k] for k in ("lfp-all", "gd-all", "lfp-head", "gd-head")}) == 1
    assert starts["lfp-scratch"] == starts["gd-scratch"] != starts["lfp-all"]


def _model(run_dir):
    state = ckpt.load(Path(run_dir) / "last.npz")
    return {k[len("model/") :]: v for k, v in state.items() if k.startswith("model/")}


def test_head_only_runs_keep_the_pretrained_convolutions_exactly(smoke):
    _, _, folder = smoke
    runs = folder / "runs"
    pretrained = _model(runs / "pretrain" / "method=gd")
    head_runs = [p for p in (runs / "finetune").iterdir() if "trainable=7-10-13" in p.name]
    all_runs = [p for p in (runs / "finetune").iterdir() if "trainable=none" in p.name]
    assert len(head_runs) == 2 and len(all_runs) == 2
    for run in head_runs:
        tuned = _model(run)
        for name in ("0.weight", "0.bias", "3.weight", "3.bias"):
            assert tuned[name].tobytes() == pretrained[name].tobytes(), (run.name, name)
        assert tuned["13.weight"].tobytes() != pretrained["13.weight"].tobytes(), run.name
    for run in all_runs:  # fine-tuning every layer moves the convolutions too
        assert _model(run)["0.weight"].tobytes() != pretrained["0.weight"].tobytes(), run.name


def test_a_rerun_only_redraws(smoke, capsys):
    figure, out, _ = smoke
    capsys.readouterr()
    assert figure.main(["--smoke", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0 run now, 1 already done" in text and "0 run now, 4 already done" in text
