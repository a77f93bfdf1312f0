"""Sparsity and pruning: an MLP and the LeNet trained on MNIST by LFP and by gradient descent at
the same settings, then the Gini coefficient of ``|w|`` per layer, the distribution of ``|w|``,
and test accuracy against the fraction of weights removed by magnitude pruning, over the whole
model (global) and layer by layer.

The paper's claim: LFP-trained models are sparser (more weights near zero, a higher Gini
coefficient) and prune better; its CIFAR-10 curves keep LFP's accuracy until 85-90 % of the
weights are pruned, while GD's falls from about 65 %.

Settings (the paper's MNIST runs, LFP and GD alike): SGD lr 0.1, momentum 0.9, batch 128,
global-norm clipping at 3.0; LFP with the model's default reward (softmax_loss) and the epsilon
rule (eps 1e-6), GD on the mean cross-entropy; both from the same initial weights (seed 0). The
MLP is 784-120-84-10 (zoo ``mlp``, widths (120, 84)), the LeNet zoo ``lenet`` (lfprop's: two
5x5 convolutions with max pooling, 256-120-84-10 with dropout 0.5). Float32, lfp_ref's MNIST in
[0, 1].

Pruning (:mod:`lfp_ref.pruning`): the weights of every Dense and Conv2d layer (biases kept);
at rate r the ``round(r * n)`` smallest ``|w|`` are zeroed, of all n weights together
(``global``) or of each layer separately (``layer``); rates 0, 10, ..., 90, 95, 97, 99 %; test
accuracy of each pruned copy of the trained model (eval mode: dropout off). The trained models
are the runs' last checkpoints (:func:`lfp_ref.load_run`); the test set is the runs' own, so
the accuracy at rate 0 equals the run's final test accuracy.

Outputs in ``figures/out/sparsity/<mode>/``: ``weights.csv`` (per model, method and layer: the
number of weights, the Gini coefficient of ``|w|``, the fraction of exact zeros, quantiles of
``|w|``; layer ``all`` for the whole model), ``pruning.csv`` (per model, method, scope and rate:
test accuracy and the fraction of zero weights), ``summary.json`` (settings, accuracies,
training times, the largest rate that keeps accuracy within 1 and 5 points of the unpruned
model, the paper's claim) and ``sparsity.png``; the training runs under ``runs/`` (one run
folder per model and method, ``runs/results.csv``). Full mode copies the PNG to
``figures/png/sparsity.png``.

Modes: ``--smoke`` (seconds: the MLP and the small CNN ``small-cnn`` (the LeNet needs 28x28
input) on the 8x8 digits, 3 epochs), ``--quick`` (a few minutes: 10000 MNIST training
images, 2000 test images, 2 epochs; 40 s on 2 cores), full (all of MNIST, 10 epochs: 25 s per
LeNet epoch on one free core, the runs two at a time, so about 5 minutes on 2 free cores and
20 on 2 shared ones). The paper trained the LeNet for 50 epochs; at these settings GD's LeNet
here peaks near 98.7 % around epoch 5 and collapses after about 15 (training loss rising from
0.12 to 2.1, 35 % test accuracy at epoch 26), so pruning its last checkpoint after 50 epochs
would compare LFP against a broken model (figures/README.md).

    python figures/fig_sparsity.py [--quick | --smoke] [--workers N] [--out DIR] [--data-root DIR]
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from figures import common  # noqa: E402
from lfp_ref import pruning  # noqa: E402
from lfp_ref.train import TrainConfig, evaluate, load_run  # noqa: E402
from lfp_ref.train.trainer import limit, load_data  # noqa: E402

NAME = "sparsity"
PAPER_TEXT = (
    "LFP-trained models are sparser and prune better: on CIFAR-10 LFP holds its accuracy until "
    "85-90 % of the weights are pruned, GD's accuracy falls from about 65 %"
)
METHODS = ("lfp", "gd")
COLORS = {"lfp": "tab:red", "gd": "tab:blue"}
LABELS = {"lfp": "LFP", "gd": "GD"}
SCOPES = pruning.SCOPES
SCOPE_STYLES = {"global": "o-", "layer": "s--"}
RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
#: accuracy drops (absolute) for "holds its accuracy until rate r"
DROPS = (0.01, 0.05)

#: the configuration every run shares (the paper's MNIST settings)
BASE = TrainConfig(
    model="mlp",
    data="mnist",
    method="lfp",
    **common.PAPER_MNIST,
)

#: the two networks: sweep overrides of each
MODELS = {
    "mlp": {"model": "mlp", "widths": [120, 84]},
    "lenet": {"model": "lenet"},
}
#: panel titles by zoo name
MODEL_TITLES = {"mlp": "MLP, hidden 120-84", "lenet": "LeNet", "small-cnn": "small CNN"}

MODE_SETTINGS = {
    "smoke": dict(
        data="digits",
        epochs=3,
        batch_size=32,
        limit_test=256,
        models={"mlp": MODELS["mlp"], "lenet": {"model": "small-cnn"}},
    ),
    "quick": dict(data="mnist", epochs=2, limit_train=10000, limit_test=2000, models=MODELS),
    # not the paper's 50 epochs: GD's LeNet collapses after about 15 at these settings
    "full": dict(data="mnist", epochs=10, models=MODELS),
}


def base_for(mode, data_root=None):
    settings = {k: v for k, v in MODE_SETTINGS[mode].items() if k != "models"}
    if data_root is not None and settings["data"] != "digits":  # digits are bundled
        settings["data_root"] = str(data_root)
    return dataclasses.replace(BASE, **settings)


def points(mode):
    """The overrides of every run: each model by each method."""
    return [
        {**overrides, "method": method}
        for overrides in MODE_SETTINGS[mode]["models"].values()
        for method in METHODS
    ]


def model_key(row, mode):
    """``"mlp"`` or ``"lenet"`` of a results row."""
    for key, overrides in MODE_SETTINGS[mode]["models"].items():
        if row["model"] == overrides["model"]:
            return key
    raise KeyError(row["model"])


def layer_labels(model):
    """``{weight name: "0 Conv2d"}`` for the axis labels."""
    layers = dict(model.named_layers())
    return {
        name: f"{name.rsplit('.', 1)[0]} {type(layers[name.rsplit('.', 1)[0]]).__name__}"
        for name in pruning.prunable_weights(model)
    }


def test_set(config, cache):
    """The test images of a run's configuration (loaded once per data set and limit)."""
    key = (config.data, config.limit_test, config.dtype, config.data_root)
    if key not in cache:
        dataset = limit(load_data(config), None, config.limit_test)
        cache[key] = (np.ascontiguousarray(dataset.x_test, dtype=config.dtype), dataset.y_test)
    return cache[key]


def analyse(run_dir, cache):
    """Weights and pruning curves of one trained run: ``(weight rows, pruning rows, model,
    magnitudes per layer)``."""
    run = load_run(run_dir)
    model = run.model  # eval mode
    x, y = test_set(run.config, cache)
    labels = layer_labels(model)
    quantiles = pruning.weight_quantiles(model, QUANTILES)
    weights = {
        name: np.abs(np.asarray(w, dtype=np.float64))
        for name, w in pruning.prunable_weights(model).items()
    }
    weight_rows = []
    for name, magnitudes in [*weights.items(), ("all", None)]:
        if name == "all":
            values = np.concatenate([a.ravel() for a in weights.values()])
            label, shape = "all", ""
        else:
            values, label = magnitudes.ravel(), labels[name]
            shape = "x".join(map(str, magnitudes.shape))
        row = {
            "layer": name,
            "label": label,
            "shape": shape,
            "n": values.size,
            "gini": pruning.gini(values),
            "zero_fraction": float(np.mean(values == 0)),
            "mean_abs": float(values.mean()),
        }
        row.update({f"q{q:g}": v for q, v in zip(QUANTILES, quantiles[name])})
        weight_rows.append(row)
    unpruned, _ = evaluate(model, x, y)
    prune_rows = []
    for scope in SCOPES:
        for rate in RATES:
            pruned = model if rate == 0 else pruning.magnitude_prune(model, rate, scope=scope)
            acc = unpruned if rate == 0 else evaluate(pruned, x, y)[0]
            prune_rows.append(
                {
                    "scope": scope,
                    "rate": rate,
                    "test_acc": acc,
                    "zero_fraction": pruning.zero_fraction(pruned),
                }
            )
    return weight_rows, prune_rows, weights, labels


def holds_until(curve, drop):
    """The largest rate up to which the accuracy stays within ``drop`` of the unpruned one
    (``curve``: ``[(rate, acc)]`` sorted by rate, starting at 0)."""
    start = curve[0][1]
    best = 0.0
    for rate, acc in curve:
        if acc < start - drop:
            break
        best = rate
    return best


def _stretch(percent):
    return -np.log10(1 - np.clip(np.asarray(percent, dtype=float), None, 99.99) / 100)


def _unstretch(value):
    return 100 * (1 - 10 ** -np.asarray(value, dtype=float))


def plot(results, mode, folder, settings):
    plt = common.pyplot()
    models = list(results)
    fig, axes = plt.subplots(len(models), 3, figsize=(15, 4.4 * len(models)), squeeze=False)
    width = 0.38
    for row, key in enumerate(models):
        gini_ax, hist_ax, prune_ax = axes[row]
        by_method = results[key]
        layers = [r["label"] for r in by_method["lfp"]["weights"]]
        xs = np.arange(len(layers))
        for i, method in enumerate(METHODS):
            ginis = [r["gini"] for r in by_method[method]["weights"]]
            label = f"{LABELS[method]} ({by_method[method]['test_acc']:.1%})"
            bars = gini_ax.bar(
                xs + (i - 0.5) * width, ginis, width, color=COLORS[method], label=label
            )
            gini_ax.bar_label(bars, fmt="%.2f", fontsize=7)
        gini_ax.set_xticks(xs, layers, rotation=20, fontsize=8)
        gini_ax.set(ylabel="Gini coefficient of |w|", ylim=(0, 1.2), yticks=np.linspace(0, 1, 6))
        zoo_name = by_method["lfp"]["row"]["model"]
        gini_ax.set_title(f"{MODEL_TITLES.get(zoo_name, zoo_name)}: Gini per layer (1 = sparse)")
        gini_ax.legend(fontsize=8, loc="upper center", ncol=2, title="method (test accuracy)")
        bins = np.linspace(-6, 0, 61)
        for method in METHODS:
            mags = by_method[method]["magnitudes"]
            rel = np.concatenate([(a / a.max()).ravel() for a in mags.values() if a.max() > 0])
            logs = np.log10(np.maximum(rel, 1e-6))  # exact zeros in the first bin
            hist_ax.hist(logs, bins=bins, histtype="step", color=COLORS[method], lw=1.5,
                         density=True, label=LABELS[method])  # fmt: skip
        hist_ax.set(xlabel="log10(|w| / largest |w| of its layer); below 1e-6 (and 0) at -6",
                    ylabel="density", yscale="log")  # fmt: skip
        hist_ax.set_title("|w| relative to its layer's largest, all layers")
        hist_ax.legend(fontsize=8)
        for method in METHODS:
            for scope in SCOPES:
                curve = [r for r in by_method[method]["pruning"] if r["scope"] == scope]
                prune_ax.plot([100 * r["rate"] for r in curve], [r["test_acc"] for r in curve],
                              SCOPE_STYLES[scope], color=COLORS[method], ms=4,
                              label=f"{LABELS[method]}, {scope}")  # fmt: skip
        # -log10(1 - r): equal room for 0-90 %, 90-99 % (where the curves part)
        prune_ax.set_xscale("function", functions=(_stretch, _unstretch))
        prune_ax.set_xticks([0, 50, 80, 90, 95, 97, 99])
        prune_ax.set(xlabel="weights pruned (%), smallest |w| first (axis: -log10(1 - rate))",
                     ylabel="test accuracy", ylim=(0, 1.02), xlim=(0, 99.2))  # fmt: skip
        prune_ax.set_title("test accuracy vs pruning rate")
        prune_ax.legend(fontsize=8, loc="lower left")
        prune_ax.grid(alpha=0.3)
    data = settings["data"]
    limit_text = (
        f", {settings['limit_train']} training images" if settings.get("limit_train") else ""
    )
    fig.suptitle(
        f"Sparsity and magnitude pruning, LFP vs GD from the same initial weights ({data}, "
        f"{settings['epochs']} epochs{limit_text}, SGD lr 0.1, momentum 0.9, clip 3; {mode} mode)"
    )
    fig.tight_layout()
    return common.save_figure(fig, NAME, folder, mode)


def main(argv=None):
    parser = common.parser(
        __doc__,
        data_root="folder holding the MNIST files (the runs' data_root; default: "
        "LFP_REF_DATA/mnist or the user cache)",
    )
    args = parser.parse_args(argv)
    mode = common.mode_of(args)
    settings = MODE_SETTINGS[mode]
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        runs = folder / "runs"
        rows = common.run_grid(
            points(mode), base_for(mode, args.data_root), runs, common.workers_of(args),
            f"figure {NAME}",
        )  # fmt: skip
        cache, results, weight_table, prune_table = {}, {}, [], []
        for row in rows:
            key, method = model_key(row, mode), row["method"]
            if row["status"] != "done":
                raise RuntimeError(f"{row['run_dir']}: {row['status']}; nothing to prune")
            weight_rows, prune_rows, magnitudes, _ = analyse(runs / row["run_dir"], cache)
            head = {"model": key, "method": method}
            weight_table += [{**head, **r} for r in weight_rows]
            prune_table += [{**head, **r} for r in prune_rows]
            if prune_rows[0]["test_acc"] != row["final_test_acc"]:
                raise RuntimeError(
                    f"{row['run_dir']}: the reloaded model's accuracy {prune_rows[0]['test_acc']} "
                    f"is not the run's final test accuracy {row['final_test_acc']}"
                )
            results.setdefault(key, {})[method] = {
                "weights": [r for r in weight_rows],
                "pruning": prune_rows,
                "magnitudes": magnitudes,
                "test_acc": row["final_test_acc"],
                "row": row,
            }
        common.write_csv(folder / "weights.csv", weight_table)
        common.write_csv(folder / "pruning.csv", prune_table)
        summary = {
            "mode": mode,
            "settings": {
                **{k: v for k, v in dataclasses.asdict(base_for(mode)).items() if v is not None},
                "models": settings["models"],
            },
            "rates": RATES,
            "paper": PAPER_TEXT,
            "models": {},
        }
        for key, by_method in results.items():
            summary["models"][key] = {}
            for method, result in by_method.items():
                entry = {
                    "test_acc": result["test_acc"],
                    "train_acc": result["row"]["final_train_acc"],
                    "best_test_acc": result["row"]["best_test_acc"],
                    "epochs": result["row"]["epochs_done"],
                    "train_seconds": result["row"]["wall_time"],
                    "gini": {r["layer"]: r["gini"] for r in result["weights"]},
                    "zero_fraction": result["weights"][-1]["zero_fraction"],
                }
                for scope in SCOPES:
                    curve = [
                        (r["rate"], r["test_acc"]) for r in result["pruning"] if r["scope"] == scope
                    ]
                    entry[scope] = {
                        "acc": {f"{rate:g}": acc for rate, acc in curve},
                        **{f"holds_within_{drop:g}": holds_until(curve, drop) for drop in DROPS},
                    }
                summary["models"][key][method] = entry
        common.write_json(folder / "summary.json", summary)
        plot(results, mode, folder, settings)
        for key, by_method in summary["models"].items():
            for method, e in by_method.items():
                accs = " ".join(
                    f"{scope} 90/95/99%: "
                    + "/".join(f"{e[scope]['acc'][r]:.3f}" for r in ("0.9", "0.95", "0.99"))
                    for scope in SCOPES
                )
                print(
                    f"{key:6s} {method:3s} test acc {e['test_acc']:.4f}, Gini (all) "
                    f"{e['gini']['all']:.3f}, holds within 1 point until global "
                    f"{e['global']['holds_within_0.01']:.2f} / layer "
                    f"{e['layer']['holds_within_0.01']:.2f}; {accs}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
