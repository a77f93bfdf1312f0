"""Spiking networks: the paper's minimal SNN example (lfprop's SmallLifMLP, 784-1000-10 LIF
neurons, MNIST, T = 15 steps) trained by LFP and by surrogate-gradient BPTT from the same initial
weights: learning curves, the spike rate of every LIF layer over training, and test accuracy
against wall-clock time.

Settings (lfprop's minimal_example_spiking_nets notebook): batch 128, SGD lr 0.02, momentum 0.9,
global-norm clipping at 3.0, beta 0.9, threshold 1, subtraction reset, eps 1e-6, 3 epochs. LFP
uses the rate-coded reward divided by T (``snn_rate_coded_mean``, as the notebook's
``reward /= n_steps``); surrogate BPTT (``method="surrogate"``) descends the rate-coded
cross-entropy with snntorch's atan surrogate (alpha 2) at the same optimizer settings. The data
are lfp_ref's MNIST in [0, 1] (the notebook normalises to [-1, 1]; see figures/README.md).

What is measured. Every run is a normal run folder (``lfp-ref eval`` opens it) under
``runs/<method>``; it stops every ~1/10 epoch (``Trainer.run(max_steps=...)``, a checkpoint) to
take a probe on the first test images: the accuracy from the spike counts, the rate-coded
cross-entropy and the spike rate of every LIF layer (the fraction of (step, sample, neuron)
entries that spike). The probes run outside the trainer's clock. The time axis is the trainer's
own: ``wall_time`` of metrics.csv is measured per epoch (its steps and its evaluation) and the
axis is its running sum, accumulated once (lfprop's plotting notebook summed an already
cumulative time a second time); a probe's time is the sum of the finished epochs' wall times
plus the step time of the epoch so far.

Outputs in ``figures/out/snn/<mode>/``: ``curves.csv`` (per probe: method, step, epoch, probe
accuracy and loss, training seconds so far), ``rates.csv`` (per probe and LIF layer: the spike
rate), ``epochs.csv`` (metrics.csv of both runs with the cumulative time), ``summary.json``
(settings, final accuracies, wall times, the paper's numbers) and ``snn.png``; full mode copies
the PNG to ``figures/png/snn.png``.

Modes: ``--smoke`` (seconds: a 32-unit net, T = 4, on 256 of the 8x8 digits), ``--quick``
(30 s: the real network and T on 19200 MNIST images, one epoch), full (the notebook's run: 60k
images, 3 epochs; about 8 minutes per method on 2 shared cores).

    python figures/fig_snn.py [--quick | --smoke] [--out DIR] [--data-root DIR]
    python figures/fig_snn.py --model snn-cnn --data fashion-mnist   # -> png/snn_cnn_fashion.png

``--model snn-cnn`` trains the paper's spiking CNN (lfprop's LifCNN) at batch 64 for one epoch
(full mode), ``--data fashion-mnist`` on Fashion-MNIST; the outputs are then named
``snn_cnn_mnist`` / ``snn_cnn_fashion`` (folder and PNG).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from figures import common  # noqa: E402
from lfp_ref import engine  # noqa: E402
from lfp_ref.losses import snn_ce_rate  # noqa: E402
from lfp_ref.snn import LIF, predict  # noqa: E402
from lfp_ref.train import TrainConfig, Trainer, evaluate, read_run  # noqa: E402

NAME = "snn"
#: lfprop's minimal SNN notebook (LFP only): validation accuracy after epochs 1, 2, 3
PAPER = {"lfp": [0.89, 0.91, 0.88]}
PAPER_TEXT = (
    "lfprop's minimal_example_spiking_nets notebook (SmallLifMLP on MNIST, T = 15, SGD lr 0.02, "
    "3 epochs, LFP only): validation accuracy 0.89, 0.91, 0.88 after epochs 1, 2, 3"
)
#: the two methods, with what differs between their configurations
METHODS = {
    "lfp": {"method": "lfp"},
    "surrogate": {"method": "surrogate"},
}
COLORS = {"lfp": "tab:red", "surrogate": "tab:blue"}
LABELS = {"lfp": "LFP (no surrogate)", "surrogate": "surrogate BPTT (atan)"}

#: the configuration both methods share (lfprop's minimal example)
BASE = dict(
    model="snn-mlp",
    batch_size=128,
    optimizer="sgd",
    lr=0.02,
    momentum=0.9,
    clip=3.0,
    eps=1e-6,
    reward="snn_rate_coded_mean",  # LFP's reward; the surrogate method only logs it
    seed=0,
    dtype="float32",
)

#: per mode: data, size, T, epochs, probes per epoch, probe images
MODE_SETTINGS = {
    "smoke": dict(
        config=dict(
            data="digits",
            widths=(32,),
            epochs=1,
            batch_size=32,
            limit_train=256,
            limit_test=128,
            model_options={"timesteps": 4},
        ),
        probes_per_epoch=2,
        probe_size=64,
    ),
    "quick": dict(
        config=dict(
            data="mnist",
            epochs=1,
            limit_train=19200,
            limit_test=2000,
            model_options={"timesteps": 15},
        ),
        probes_per_epoch=5,
        probe_size=500,
    ),
    "full": dict(
        config=dict(data="mnist", epochs=3, model_options={"timesteps": 15}),
        probes_per_epoch=10,
        probe_size=1000,
    ),
}

PROBE_BATCH = 500

#: the other networks and data sets (``--model``, ``--data``): the paper's spiking CNN (lfprop's
#: LifCNN) at batch 64, one epoch in full mode (about 9 minutes per method on 2 cores), on MNIST
#: and Fashion-MNIST; the figure and its folder are named after them
VARIANT_SETTINGS = {
    "snn-cnn": {
        "smoke": dict(
            model="snn-cnn",
            widths=None,
            data="figures.fig_snn:digits16",
            batch_size=32,
            epochs=1,
            limit_train=128,
            limit_test=64,
            model_options={"timesteps": 4},
        ),
        "quick": dict(
            model="snn-cnn",
            widths=None,
            batch_size=64,
            epochs=1,
            limit_train=3200,
            limit_test=1000,
            model_options={"timesteps": 15},
        ),
        "full": dict(
            model="snn-cnn", widths=None, batch_size=64, epochs=1, model_options={"timesteps": 15}
        ),
    },
}
MODELS = ("snn-mlp", "snn-cnn")
DATASETS = ("mnist", "fashion-mnist")


def digits16(**options):
    """The 8x8 digits shown at 16x16 (each pixel 2x2), so that the spiking CNN's two 5x5
    convolutions and poolings fit: smoke mode's data (a TrainConfig data loader)."""
    from lfp_ref.data import Dataset, load

    d = load("digits", **options)
    up = lambda x: np.kron(x, np.ones((1, 1, 2, 2), dtype=x.dtype))  # noqa: E731
    return Dataset(up(d.x_train), d.y_train, up(d.x_test), d.y_test, d.num_classes,
                   "digits16", "the 8x8 digits at 16x16")  # fmt: skip


def figure_name(model="snn-mlp", data="mnist"):
    """``snn`` for the paper's minimal example, else ``snn_<net>_<data>`` (snn_cnn_fashion)."""
    if (model, data) == ("snn-mlp", "mnist"):
        return NAME
    return f"snn_{model.removeprefix('snn-')}_{data.removesuffix('-mnist')}"


def settings_of(mode, model="snn-mlp", data="mnist"):
    """The shared configuration of ``mode`` for the network and data set (smoke mode keeps its
    8x8 digits)."""
    values = {**BASE, **MODE_SETTINGS[mode]["config"]}
    values.update(VARIANT_SETTINGS.get(model, {}).get(mode, {}))
    if mode != "smoke":  # smoke mode: the small images of its settings
        values["data"] = data
    return values


def config_of(method, mode, data_root=None, model="snn-mlp", data="mnist"):
    values = {**settings_of(mode, model, data), **METHODS[method]}
    if data_root is not None:
        values["data_root"] = str(data_root)
    return TrainConfig(**values)


def weights_digest(model):
    """A short hash of the model's parameters (the two runs must start from the same ones)."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:16]


def probe(trainer, x, y):
    """Accuracy (spike counts), rate-coded cross-entropy and the spike rate of every LIF layer
    on the probe images, in eval mode (the model's mode is restored)."""
    model = trainer.model
    lifs = [(name, layer) for name, layer in model.named_layers() if isinstance(layer, LIF)]
    was_training = model.training
    model.eval()
    correct, loss, spikes = 0, 0.0, {name: 0.0 for name, _ in lifs}
    try:
        for start in range(0, len(y), PROBE_BATCH):
            xb, yb = x[start : start + PROBE_BATCH], y[start : start + PROBE_BATCH]
            _, out = engine.forward(model, xb)
            correct += int(np.count_nonzero(predict(out) == yb))
            loss += snn_ce_rate(out, yb, reduction="sum")[0]
            for name, layer in lifs:
                spikes[name] += float(layer.cached_spikes.sum(dtype=np.float64))
    finally:
        model.train(was_training)
    steps = model.timesteps
    rates = {}
    for name, layer in lifs:
        neurons = int(np.prod(layer.cached_spikes.shape[2:]))
        rates[name] = spikes[name] / (steps * len(y) * neurons)
    seconds = sum(row["wall_time"] for row in trainer.history) + trainer.sums["seconds"]
    return {
        "step": trainer.step,
        "epoch": trainer.step / trainer.batches_per_epoch,
        "probe_acc": correct / len(y),
        "probe_loss": loss / len(y),
        "train_seconds": seconds,
        "rates": rates,
    }


def train(method, mode, folder, data_root=None, model="snn-mlp", data="mnist"):
    """One method's run (skipped when its folder holds the finished run and its probes);
    returns ``(probes, metrics rows, initial test accuracy, weights digest)``."""
    settings = MODE_SETTINGS[mode]
    run_dir = folder / "runs" / method
    saved = run_dir / "probes.json"
    config = config_of(method, mode, data_root, model, data)
    if saved.exists():
        import json

        record = json.loads(saved.read_text())
        metrics = read_run(run_dir)["metrics"]
        if record.get("config") == config.validated().to_dict() and len(metrics) == config.epochs:
            print(f"{method}: {run_dir} is finished; reusing it", flush=True)
            return record["probes"], metrics, record["initial_test_acc"], record["digest"]
    quiet = mode == "smoke"
    trainer = Trainer(
        config,
        out=run_dir,
        overwrite=True,
        progress=not quiet,
        log=(lambda *a: None) if quiet else print,
    )
    digest = weights_digest(trainer.model)
    initial_acc, _ = evaluate(trainer.model, trainer.x_test, trainer.y_test)
    size = settings["probe_size"]
    x, y = trainer.x_test[:size], trainer.y_test[:size]
    probes = [probe(trainer, x, y)]
    total = config.epochs * trainer.batches_per_epoch
    every = max(1, trainer.batches_per_epoch // settings["probes_per_epoch"])
    stops = sorted({*range(every, total, every), total})
    for stop in stops:
        trainer.run(max_steps=stop)
        probes.append(probe(trainer, x, y))
    common.write_json(
        saved,
        {
            "config": config.validated().to_dict(),
            "probes": probes,
            "initial_test_acc": initial_acc,
            "digest": digest,
        },
    )
    return probes, read_run(run_dir)["metrics"], initial_acc, digest


def _curves(ax, results, mode, epochs, with_initial=True, paper=True):
    """Probe accuracy (lines) and test-set accuracy after each epoch (dots) of both methods."""
    for method, (probes, metrics, initial, _) in results.items():
        color = COLORS[method]
        ax.plot([p["epoch"] for p in probes], [p["probe_acc"] for p in probes], "-", color=color,
                alpha=0.6, label=f"{LABELS[method]}: probe")  # fmt: skip
        xs, ys = [row["epoch"] for row in metrics], [row["test_acc"] for row in metrics]
        if with_initial:
            xs, ys = [0, *xs], [initial, *ys]
        ax.plot(xs, ys, "o", color=color, label=f"{LABELS[method]}: test set")
    if mode == "full" and paper:
        ax.plot(range(1, epochs + 1), PAPER["lfp"][:epochs], "D", color="tab:gray",
                label="lfprop notebook (LFP)")  # fmt: skip


def plot(results, mode, folder, epochs, model="snn-mlp", data="mnist"):
    name, paper = figure_name(model, data), (model, data) == ("snn-mlp", "mnist")
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (full, zoom), (rates, clock) = axes
    _curves(full, results, mode, epochs, paper=paper)
    full.set(xlabel="epoch", ylabel="test accuracy (spike counts)", ylim=(0, 1))
    full.set_title("learning curves (probe: first test images; dots: test set)")
    full.legend(fontsize=7, loc="lower right")
    _curves(zoom, results, mode, epochs, with_initial=False, paper=paper)
    late = [
        value
        for probes, metrics, _, _ in results.values()
        for value in [p["probe_acc"] for p in probes if p["epoch"] >= epochs / 3]
        + [row["test_acc"] for row in metrics]
    ]
    if mode == "full" and paper:
        late += PAPER["lfp"][:epochs]
    zoom.set(xlabel="epoch", ylabel="test accuracy", xlim=(epochs / 3 - 0.05, epochs + 0.1),
             ylim=(min(late) - 0.01, min(1.0, max(late) + 0.01)))  # fmt: skip
    zoom.set_title("the same, zoomed")
    for method, (probes, metrics, initial, _) in results.items():
        color = COLORS[method]
        layers = list(probes[0]["rates"])
        for layer, style in zip(layers, ("-", "--", ":", "-.")):
            rates.plot([p["epoch"] for p in probes], [p["rates"][layer] for p in probes], style,
                       color=color, label=f"{method}, LIF {layer}")  # fmt: skip
        cumulative = np.cumsum([row["wall_time"] for row in metrics])  # per epoch, summed once
        clock.plot([0.0, *(cumulative / 60)], [initial, *[row["test_acc"] for row in metrics]],
                   "o-", color=color, label=LABELS[method])  # fmt: skip
    rates.set(xlabel="epoch", ylabel="spike rate (spiking fraction of step x neuron)")
    rates.set_title("spike rate per LIF layer (probe images)")
    rates.legend(fontsize=7)
    clock.set(xlabel="training time, min (each epoch's own seconds, summed once)",
              ylabel="test accuracy", ylim=(0, 1))  # fmt: skip
    clock.set_title("test accuracy vs wall-clock time")
    clock.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{model} on {data}, LFP vs surrogate BPTT from the same initial weights "
                 f"({mode} mode)")  # fmt: skip
    fig.tight_layout()
    return common.save_figure(fig, name, folder, mode)


def main(argv=None):
    parser = common.parser(
        __doc__,
        data_root="the folder of the data set's files (default: LFP_REF_DATA/<name>, the cache)",
    )
    parser.add_argument("--model", choices=MODELS, default="snn-mlp",
                        help="the spiking network (default: %(default)s)")  # fmt: skip
    parser.add_argument("--data", choices=DATASETS, default="mnist",
                        help="data set (default: %(default)s; smoke: 8x8 digits)")  # fmt: skip
    args = parser.parse_args(argv)
    mode = common.mode_of(args)
    model, data = args.model, args.data
    name = figure_name(model, data)
    with common.Timer(name, mode):
        folder = common.out_dir(name, args)
        results = {m: train(m, mode, folder, args.data_root, model, data) for m in METHODS}
        digests = {m: r[3] for m, r in results.items()}
        if len(set(digests.values())) != 1:
            raise RuntimeError(f"the runs did not start from the same weights: {digests}")
        curves, rates, epochs = [], [], []
        for method, (probes, metrics, _, _) in results.items():
            for p in probes:
                curves.append({"method": method, **{k: v for k, v in p.items() if k != "rates"}})
                rates += [
                    {
                        "method": method,
                        "step": p["step"],
                        "epoch": p["epoch"],
                        "layer": layer,
                        "rate": rate,
                    }
                    for layer, rate in p["rates"].items()
                ]
            total = 0.0
            for row in metrics:
                total += row["wall_time"]
                epochs.append({"method": method, **row, "cumulative_time": total})
        common.write_csv(folder / "curves.csv", curves)
        common.write_csv(folder / "rates.csv", rates)
        common.write_csv(folder / "epochs.csv", epochs)
        n_epochs = config_of("lfp", mode, model=model, data=data).epochs
        summary = {
            "mode": mode,
            "settings": settings_of(mode, model, data),
            "initial_weights_digest": digests["lfp"],
            "paper": PAPER_TEXT if name == NAME else None,
            "methods": {
                method: {
                    "initial_test_acc": initial,
                    "test_acc": [row["test_acc"] for row in metrics],
                    "train_acc": [row["train_acc"] for row in metrics],
                    "wall_time_per_epoch": [row["wall_time"] for row in metrics],
                    "total_wall_time": float(sum(row["wall_time"] for row in metrics)),
                    "final_rates": probes[-1]["rates"],
                }
                for method, (probes, metrics, initial, _) in results.items()
            },
        }
        common.write_json(folder / "summary.json", summary)
        plot(results, mode, folder, n_epochs, model, data)
        for method, values in summary["methods"].items():
            accs = ", ".join(f"{a:.4f}" for a in values["test_acc"])
            times = ", ".join(f"{t:.0f}" for t in values["wall_time_per_epoch"])
            print(f"{method:9s} test acc per epoch {accs}; seconds per epoch {times}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
