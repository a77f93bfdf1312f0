"""figures/fig_summary.py: draws what the other scripts wrote, says what is missing."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fig_summary():
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(ROOT))
    from figures import fig_summary

    return fig_summary


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_summary_without_inputs_names_every_script(fig_summary, tmp_path, capsys):
    assert fig_summary.main(["--smoke", "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "summary" / "smoke" / "summary.json").read_text())
    assert out["missing"] == [script for _, script, _ in fig_summary.PANELS]
    assert (tmp_path / "summary" / "smoke" / "summary.png").exists()
    assert "run them first" in capsys.readouterr().out


def test_summary_puts_our_numbers_beside_the_papers(fig_summary, tmp_path):
    smoke = lambda name: tmp_path / name / "smoke"  # noqa: E731
    _write(
        smoke("toy") / "best.csv",
        "data,method,mean\nblobs,lfp,0.97\nblobs,gd,1.0\nswirls,lfp,0.5\n",
    )
    snn = {"methods": {"lfp": {"test_acc": [0.8, 0.9]}, "surrogate": {"test_acc": [0.85]}}}
    _write(smoke("snn") / "summary.json", json.dumps(snn))
    step = {
        "runs": {
            "mlp/lfp/sigma=0.1": {"test_acc": [0.2, 0.3]},
            "mlp/gd/sigma=0": {"test_acc": [0.1, 0.11]},
        }
    }
    _write(smoke("step") / "summary.json", json.dumps(step))
    assert fig_summary.main(["--smoke", "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "summary" / "smoke" / "summary.json").read_text())
    assert out["toy"]["blobs/lfp"] == {"ours": 0.97, "paper": 1.0}
    assert out["toy"]["swirls/lfp"]["paper"] == 0.988
    assert out["snn"]["lfp"] == {"ours": 0.9, "epochs": 2, "paper": 0.88}
    assert out["snn"]["surrogate"]["paper"] is None
    assert out["step"]["mlp/lfp/sigma=0.1"] == {"ours": 0.3, "epochs": 2, "paper": 0.70}
    assert out["step"]["mlp/gd/sigma=0"]["paper"] == 0.10
    assert out["missing"] == ["fig_sparsity.py", "fig_cost.py", "fig_transfer.py"]
