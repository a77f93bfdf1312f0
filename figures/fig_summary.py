"""The summary figure for the README's first screen: one panel per claim of the paper, each with
the paper's number beside ours, drawn from the numbers the other figure scripts wrote.

Panels: toy 2-D accuracy (fig_toy), step-function networks (fig_step), pruning (fig_sparsity),
cost against GD and Feedback Alignment (fig_cost), spiking networks (fig_snn), transfer learning
(fig_transfer). Each reads ``figures/out/<name>/<mode>/`` of the same mode as this script (run
the others first: ``make figures`` runs this one last); a panel whose numbers are missing says
which script to run, and the script lists them. Nothing is trained here.

Outputs in ``figures/out/summary/<mode>/``: ``summary.png`` and ``summary.json`` (every number
drawn, with the paper's); full mode copies the PNG to ``figures/png/summary.png``.

    python figures/fig_summary.py [--quick | --smoke] [--out DIR]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import common  # noqa: E402

NAME = "summary"
LFP, GD, FA, OTHER = "tab:red", "tab:blue", "tab:green", "tab:gray"

#: the paper's numbers each panel sets ours against (figures/README.md cites each)
PAPER = {
    "toy": {"blobs": (1.0, 1.0), "circles": (0.986, 0.986), "swirls": (0.988, 0.990)},
    "step": {"mlp": 0.70, "lenet": 0.76, "gd": 0.10},
    "sparsity": "LFP holds accuracy until 85-90 % of weights are pruned, GD falls from ~65 % "
    "(the paper's CIFAR-10 curves)",
    "cost": {"lfp": (0.9901, 26.6), "gd": (0.9920, 22.7), "fa": (0.9740, 23.3)},
    "snn": 0.88,
    "transfer": {"gd": 1 - 0.0888, "fa": 1 - 0.1277},
}


def _read_json(path):
    return json.loads(path.read_text()) if path.exists() else None


def _read_csv(path):
    if not path.exists():
        return None
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def gather(root, mode):
    """``{panel: numbers or None}`` from ``root/<figure>/<mode>/``."""
    folder = lambda name: Path(root) / name / mode  # noqa: E731
    return {
        "toy": _read_csv(folder("toy") / "best.csv"),
        "step": _read_json(folder("step") / "summary.json"),
        "sparsity": _read_json(folder("sparsity") / "summary.json"),
        "cost": _read_json(folder("cost") / "summary.json"),
        "snn": _read_json(folder("snn") / "summary.json"),
        "transfer": _read_json(folder("transfer") / "summary.json"),
    }


def _missing(ax, script, mode):
    flag = {"full": "", "quick": " --quick", "smoke": " --smoke"}[mode]
    ax.text(0.5, 0.5, f"no numbers yet:\npython figures/{script}{flag}", ha="center",
            va="center", color=OTHER, transform=ax.transAxes)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(ax, labels, ours, paper, colors):
    """Our numbers as bars, the paper's as black diamonds over them (None: no paper number)."""
    xs = range(len(labels))
    ax.bar(xs, ours, color=colors, alpha=0.8)
    for x, value in zip(xs, ours):
        ax.text(x, value + 0.02, f"{value:.1%}", ha="center", fontsize=7)
    px = [x for x, p in zip(xs, paper) if p is not None]
    ax.plot(px, [p for p in paper if p is not None], "kD", ms=5, label="paper")
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylim(0, 1.12)
    ax.legend(fontsize=7, loc="lower right")


def panel_toy(ax, rows):
    labels, ours, paper, colors, numbers = [], [], [], [], {}
    for row in rows:
        data, method = row["data"], row["method"]
        labels.append(f"{data}\n{method.upper()}")
        ours.append(float(row["mean"]))
        paper.append(PAPER["toy"][data][0 if method == "lfp" else 1])
        colors.append(LFP if method == "lfp" else GD)
        numbers[f"{data}/{method}"] = {"ours": ours[-1], "paper": paper[-1]}
    _bars(ax, labels, ours, paper, colors)
    ax.set_title("toy 2-D data: test accuracy at the best lr", fontsize=9)
    return numbers


def panel_step(ax, summary):
    labels, ours, paper, colors, numbers = [], [], [], [], {}
    for key, run in summary["runs"].items():
        arch, method, sigma = key.split("/")
        noisy = sigma != "sigma=0"
        labels.append(f"{arch}\n{method.upper()}{' +noise' if noisy else ''}")
        ours.append(run["test_acc"][-1])
        paper.append(PAPER["step"][arch] if method == "lfp" and noisy else PAPER["step"]["gd"])
        colors.append((LFP if method == "lfp" else GD) if noisy else OTHER)
        numbers[key] = {"ours": ours[-1], "epochs": len(run["test_acc"]), "paper": paper[-1]}
    _bars(ax, labels, ours, paper, colors)
    epochs = sorted({n["epochs"] for n in numbers.values()})
    ax.set_title(f"step networks after {'/'.join(map(str, epochs))} epochs (paper: 300-400)",
                 fontsize=9)  # fmt: skip
    return numbers


def panel_sparsity(ax, summary):
    numbers = {}
    model = "lenet" if "lenet" in summary["models"] else next(iter(summary["models"]))
    for method, entry in summary["models"][model].items():
        curve = entry["global"]["acc"]
        rates = [float(r) for r in curve]
        ax.plot([100 * r for r in rates], list(curve.values()), "o-", ms=3,
                color=LFP if method == "lfp" else GD, label=method.upper())  # fmt: skip
        numbers[method] = {"acc": curve, "gini": entry["gini"]}
    ax.set(xlabel="weights pruned (global magnitude), %", ylabel="test accuracy", ylim=(0, 1))
    ax.set_title(f"pruning, {model} on MNIST", fontsize=9)
    ax.text(0.02, 0.04, "paper (CIFAR-10): LFP holds to 85-90 %,\nGD falls from ~65 %",
            fontsize=7, transform=ax.transAxes)  # fmt: skip
    ax.legend(fontsize=7, loc="center left")
    return {"model": model, **numbers}


def panel_cost(ax, summary):
    model = "lenet" if "lenet" in summary["runs"] else next(iter(summary["runs"]))
    labels, ours, paper, colors, numbers = [], [], [], [], {}
    for method, run in summary["runs"][model].items():
        if run["final_test_acc"] is None:
            continue
        seconds = run["total_wall_time"] / max(1, run["epochs_done"])
        labels.append(f"{method.upper()}\n{seconds:.0f} s/ep (paper {PAPER['cost'][method][1]})")
        ours.append(run["final_test_acc"])
        paper.append(PAPER["cost"][method][0])
        colors.append({"lfp": LFP, "gd": GD, "fa": FA}[method])
        numbers[method] = {"ours": ours[-1], "s_per_epoch": seconds, "epochs": run["epochs_done"],
                           "paper": PAPER["cost"][method]}  # fmt: skip
    _bars(ax, labels, ours, paper, colors)
    ax.set_title(f"cost: {model}, CPU (ours) vs GPU (paper, 50 epochs)", fontsize=9)
    return numbers


def panel_snn(ax, summary):
    labels, ours, paper, colors, numbers = [], [], [], [], {}
    for method, entry in summary["methods"].items():
        labels.append("LFP" if method == "lfp" else "surrogate\nBPTT")
        ours.append(entry["test_acc"][-1])
        paper.append(PAPER["snn"] if method == "lfp" else None)
        colors.append(LFP if method == "lfp" else GD)
        numbers[method] = {"ours": ours[-1], "epochs": len(entry["test_acc"]), "paper": paper[-1]}
    _bars(ax, labels, ours, paper, colors)
    ax.set_title("spiking MLP on MNIST (paper: lfprop's notebook, 3 ep.)", fontsize=9)
    return numbers


def panel_transfer(ax, summary):
    curves = summary.get("runs") or summary.get("curves") or {}
    labels, ours, paper, colors, numbers = [], [], [], [], {}
    for key, run in curves.items():
        accs = run.get("test_acc") if isinstance(run, dict) else None
        if not accs:
            continue
        labels.append(key.replace("/", "\n").replace("-", " "))
        ours.append(accs[-1])
        paper.append(PAPER["transfer"]["gd"] if key.startswith("gd") else None)
        colors.append(LFP if key.startswith("lfp") else GD)
        numbers[key] = {"ours": ours[-1], "epochs": len(accs)}
    _bars(ax, labels, ours, paper, colors)
    ax.set_title("LeNet: MNIST -> Fashion-MNIST (paper: biotorch BP)", fontsize=9)
    return numbers


PANELS = (
    ("toy", "fig_toy.py", panel_toy),
    ("step", "fig_step.py", panel_step),
    ("sparsity", "fig_sparsity.py", panel_sparsity),
    ("cost", "fig_cost.py", panel_cost),
    ("snn", "fig_snn.py", panel_snn),
    ("transfer", "fig_transfer.py", panel_transfer),
)


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    mode = common.mode_of(args)
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        sources = gather(args.out or common.OUT, mode)
        plt = common.pyplot()
        fig, axes = plt.subplots(2, 3, figsize=(15, 8))
        numbers, missing = {"mode": mode, "paper": PAPER}, []
        for ax, (key, script, draw) in zip(axes.flat, PANELS):
            if sources[key] is None:
                missing.append(script)
                _missing(ax, script, mode)
                ax.set_title(key, fontsize=9)
                continue
            numbers[key] = draw(ax, sources[key])
        fig.suptitle(f"Layer-wise Feedback Propagation: the paper's claims, ours beside the "
                     f"paper's numbers ({mode} mode; figures/README.md)")  # fmt: skip
        fig.tight_layout()
        numbers["missing"] = missing
        common.write_json(folder / "summary.json", numbers)
        common.save_figure(fig, NAME, folder, mode)
        if missing:
            print(f"summary: no {mode}-mode numbers from {', '.join(missing)}; run them first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
