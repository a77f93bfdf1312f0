"""Step-function networks on MNIST: the MLP 784-120-84-10 and the paper's LeNet with a Step
(Heaviside) after every layer, trained by LFP and by gradient descent, with and without Gaussian
noise (sigma 0.1) added in training to the input of every parameterised layer.

The authors' notebooks (layerwise-feedback-propagation, nbs/nondifferentiable-act/
nondifferentiable-act.ipynb and nondifferentiable-act_lenet.ipynb), followed here:

- MLP: Flatten, Dense(784, 120), Step, Dense(120, 84), Step, Dense(84, 10), Step: the output
  layer has a Step too, so the logits are 0 or 1; with noise, a GaussianNoise before each Dense
  and one more after the output Step (the notebook's NoisyMLP adds noise to its output in
  training). LeNet: lfprop's LeNet (``zoo`` "lenet": Conv-Step-MaxPool x2, Dense(256, 120),
  Step, Dropout, Dense(120, 84), Step, Dropout, Dense(84, 10)) with no Step on the output
  layer (the notebook's NoisyLeNet; its output noise is commented out), a GaussianNoise before
  each Conv2d and Dense with noise (``zoo.build(..., input_noise=0.1)``).
- SGD lr 0.1, momentum 0.9, batch 128, global-norm clipping at 3.0, seed 0; LFP with the
  softmax_loss reward (eps 1e-6), GD with the mean cross-entropy; the images scaled to [-1, 1]
  (the notebooks' ``Normalize((0.5,), (0.5,))``; :func:`images_pm1`); 300 epochs (MLP) and 400
  (LeNet). All four runs of a model start from the same weights (the noise layers draw from
  Generators of their own, spawned after the weights and the dropout streams).

The authors' stored results (the notebooks' plots): LFP with noise about 70 % (MLP, 300 epochs)
and 76 % (LeNet, 400 epochs), LFP without noise about 10 %, GD 8-12 % (Step has derivative 0:
GD gets no gradient below the last Step; on the MLP none at all).

What is measured. Every run is a normal run folder under ``runs/`` (``lfp-ref eval`` opens it;
the model factory is ``figures.fig_step:step_net``, the loader ``figures.fig_step:images_pm1``)
with ``keep_checkpoints=True``; after training, each epoch's checkpoint (and the initial model)
is evaluated on the first :data:`PROBE_SIZE` test images in eval mode (no noise, no dropout):
the fraction of exactly-zero outputs of every Step layer. (The notebooks logged the zeros of each
parameterised layer's input, in training mode, averaged over each epoch's batches: after a
MaxPool or a Dropout that is another number than the Step's own output.) The slope is the
least-squares slope of the test accuracy over the last :data:`SLOPE_EPOCHS` epochs (fewer when
a run has fewer).

Full mode cannot run the paper's 300 / 400 epochs on 2 CPU cores: it runs :data:`FULL_EPOCHS`
(the epochs that fit in about an hour on 2 shared cores, from the measured epoch times in the
comment there). A rerun with larger numbers trains new run folders (the epochs are part of a
run's name); ``Trainer.resume(run, epochs=N)`` extends a finished run bit for bit.

Outputs in ``figures/out/step/<mode>/``: ``final.csv`` (per model, method, noise: final and best
test accuracy, epochs, slope, paper's number), ``curves.csv`` (per run and epoch: train / test
accuracy, loss, wall time), ``zeros.csv`` (per run, epoch and Step layer: the zero fraction),
``summary.json`` (settings, the above, the paper's numbers, weight digests) and ``step.png``;
full mode copies the PNG to ``figures/png/step.png``.

Modes: ``--smoke`` (seconds: the 8x8 digits upscaled to 28x28, 128 images, 2 epochs),
``--quick`` (about 2 minutes: the first 6000 MNIST training and 1000 test images, a few epochs),
full (all of MNIST, :data:`FULL_EPOCHS`).

    python figures/fig_step.py [--quick | --smoke] [--workers N] [--out DIR] [--data-root DIR]
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from figures import common  # noqa: E402
from lfp_ref import zoo  # noqa: E402
from lfp_ref.layers.activations import Step  # noqa: E402
from lfp_ref.layers.containers import Sequential  # noqa: E402
from lfp_ref.layers.noise import GaussianNoise  # noqa: E402

NAME = "step"
MODELS = ("mlp", "lenet")
METHODS = ("lfp", "gd")
#: the noise's standard deviation (the notebooks' noise_size)
SIGMA = 0.1
NOISES = (0.0, SIGMA)
MLP_WIDTHS = (120, 84)

#: the paper's epochs per model (the notebooks' ``epochs``)
PAPER_EPOCHS = {"mlp": 300, "lenet": 400}
#: the authors' stored curves: final test accuracy (model, method, sigma) -> (low, high)
PAPER = {
    ("mlp", "lfp", SIGMA): (0.70, 0.70),
    ("lenet", "lfp", SIGMA): (0.76, 0.76),
    ("mlp", "lfp", 0.0): (0.10, 0.10),
    ("lenet", "lfp", 0.0): (0.10, 0.10),
    **{(m, "gd", s): (0.08, 0.12) for m in MODELS for s in NOISES},
}
PAPER_TEXT = (
    "the authors' notebooks (nondifferentiable-act, MNIST): LFP with noise about 70 % (MLP, 300 "
    "epochs) and 76 % (LeNet, 400 epochs); LFP without noise about 10 %; GD 8-12 %"
)

#: full mode's epochs per model: what fits in about an hour for the 8 runs on 2 workers
#: (2 cores shared with other jobs, load average 4-8). Measured seconds per epoch (60k
#: images, float32, one thread, the evaluation included): MLP LFP 4.3, MLP GD 7.5, LeNet
#: LFP about 80 (GD about the same): 4 x 15 x 80 / 2 = 40 min for the LeNets, 4 x 100 x 6 / 2 =
#: 20 min for the MLPs. The paper: 300 (MLP) and 400 (LeNet) epochs.
FULL_EPOCHS = {"mlp": 100, "lenet": 15}
#: epochs of the slope fit (the last ones)
SLOPE_EPOCHS = 10
#: test images the zero fractions are measured on
PROBE_SIZE = 512

#: the configuration every run shares
BASE = dict(
    data="figures.fig_step:images_pm1",
    model="figures.fig_step:step_net",
    **common.PAPER_MNIST,
    keep_checkpoints=True,
)

#: per mode: data, limits, epochs per model, batch size
MODE_SETTINGS = {
    "smoke": dict(
        data_options={"name": "digits", "size": 28},
        limit_train=128,
        limit_test=64,
        epochs={"mlp": 2, "lenet": 2},
        batch_size=32,
        probe_size=64,
    ),
    "quick": dict(
        data_options={"name": "mnist"},
        limit_train=6000,
        limit_test=1000,
        epochs={"mlp": 10, "lenet": 5},
        probe_size=PROBE_SIZE,
    ),
    "full": dict(data_options={"name": "mnist"}, epochs=FULL_EPOCHS, probe_size=PROBE_SIZE),
}

COLORS = {"lfp": "tab:red", "gd": "tab:blue"}
LABELS = {"lfp": "LFP", "gd": "GD"}
MODEL_LABELS = {"mlp": "MLP 784-120-84-10", "lenet": "LeNet"}


# --------------------------------------------------------------------------------------------
# the data and the networks (TrainConfig factories)


def images_pm1(name="mnist", root=None, size=None):
    """A dataset of :func:`lfp_ref.data.load` with its images scaled from [0, 1] to [-1, 1] (the
    notebooks' ``Normalize((0.5,), (0.5,))``). ``size``: upscale square images to this side
    (each pixel repeated ``size // side`` times, the rest zero-padded around), for the LeNet on
    the 8x8 digits of smoke mode. A TrainConfig data loader: ``data="figures.fig_step:
    images_pm1"``, ``data_options={"name": "mnist"}`` (``"root"`` as ``data_root`` would)."""
    import dataclasses

    from lfp_ref import data

    kwargs = {} if root is None else {"root": root}
    dataset = data.load(name, **kwargs)

    def scale(x):
        if size is not None and x.shape[-1] != size:
            side = x.shape[-1]
            factor = size // side
            x = np.repeat(np.repeat(x, factor, axis=-2), factor, axis=-1)  # (N, C, k*H, k*W)
            before = (size - factor * side) // 2
            after = size - factor * side - before
            x = np.pad(x, [(0, 0), (0, 0), (before, after), (before, after)])
        return (2.0 * x - 1.0).astype(np.float32)

    return dataclasses.replace(
        dataset,
        x_train=scale(dataset.x_train),
        x_test=scale(dataset.x_test),
        source=f"{dataset.source}; scaled to [-1, 1]" + (f", upscaled to {size}" if size else ""),
    )


def step_net(num_classes, input_shape, seed, dtype, arch="mlp", sigma=0.0):
    """The notebooks' step networks (see the module docstring): ``arch`` "mlp" (Step after
    the output layer too, and with noise one more GaussianNoise after it) or "lenet" (no Step
    on the output layer); ``sigma > 0`` adds GaussianNoise(sigma) before every Dense and
    Conv2d. The same weights for the same seed whatever sigma. A TrainConfig model factory:
    ``model="figures.fig_step:step_net"``, ``model_options={"arch": "lenet", "sigma": 0.1}``."""
    if arch not in MODELS:
        raise ValueError(f"arch must be one of {', '.join(MODELS)}, got {arch!r}")
    rng = np.random.default_rng(seed)
    common_args = dict(
        num_classes=num_classes,
        input_shape=input_shape,
        activation="step",
        seed=rng,
        dtype=dtype,
        input_noise=sigma,
    )
    if arch == "lenet":
        return zoo.build("lenet", **common_args)
    layers = list(zoo.build("mlp", widths=MLP_WIDTHS, **common_args))
    layers.append(Step())
    if sigma > 0:
        layers.append(GaussianNoise(sigma, rng=rng.spawn(1)[0]))
    return Sequential(*layers)


# --------------------------------------------------------------------------------------------
# the runs


def points(mode):
    settings = MODE_SETTINGS[mode]
    out = []
    for arch in ("lenet", "mlp"):  # the longest runs first: the workers finish together
        for method in METHODS:
            for sigma in NOISES:
                out.append(
                    {
                        "model_options.arch": arch,
                        "method": method,
                        "model_options.sigma": sigma,
                        "epochs": settings["epochs"][arch],
                    }
                )
    return out


def base_config(mode, data_root=None):
    from lfp_ref.train import TrainConfig

    settings = MODE_SETTINGS[mode]
    data_options = dict(settings["data_options"])
    if data_root is not None:
        data_options["root"] = str(data_root)
    values = dict(BASE, data_options=data_options)
    for key in ("limit_train", "limit_test", "batch_size"):
        if key in settings:
            values[key] = settings[key]
    return TrainConfig(**values)


def digest(model):
    """A short hash of the model's parameter values in order (not their names: a noise layer
    shifts the positions in the names)."""
    h = hashlib.sha256()
    for value in model.parameters().values():
        h.update(str(value.shape).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()[:16]


def zero_fractions(model, x):
    """``{"step<k>": fraction of exactly-zero outputs}`` of the k-th Step layer (k = 1, 2, ...)
    of the flat ``model`` on ``x``, in eval mode (no noise, no dropout). The layers are counted,
    not named by position, so that the runs with and without noise layers share the keys."""
    model.eval()
    model.clear_caches()
    fractions = {}
    y = x
    for _, layer in model.children():
        y = layer.forward(y)
        if isinstance(layer, Step):
            fractions[f"step{len(fractions) + 1}"] = float(np.count_nonzero(y == 0) / y.size)
    model.clear_caches()
    return fractions


def step_layers(model):
    """``{"step<k>": the parameterised layer before the k-th Step, as text}``."""
    names, last = {}, None
    for _, layer in model.children():
        if layer.own_parameters():
            last = repr(layer)
        if isinstance(layer, Step):
            names[f"step{len(names) + 1}"] = f"after {last}"
    return names


def probe_run(run_dir, probe_size):
    """Per epoch (0: the initial model) the zero fractions of the Step layers on the first
    ``probe_size`` test images, from the kept epoch checkpoints; the weight digests of the
    initial and the final model; the initial model's test accuracy."""
    from lfp_ref.train import Trainer, evaluate
    from lfp_ref.train.trainer import build_model

    trainer = Trainer.open(run_dir, progress=False, log=lambda *a: None)
    x = trainer.x_test[:probe_size]
    initial = build_model(trainer.config, trainer.dataset)
    initial_acc, _ = evaluate(initial, trainer.x_test, trainer.y_test)
    rows = [{"epoch": 0, **zero_fractions(initial, x)}]
    initial_digest = digest(initial)
    for epoch in range(1, trainer.config.epochs + 1):
        path = trainer.epoch_checkpoint(epoch)
        if not path.exists():  # a diverged run stops early
            break
        trainer.load_checkpoint(path)
        rows.append({"epoch": epoch, **zero_fractions(trainer.model, x)})
    return rows, initial_digest, digest(trainer.model), initial_acc, step_layers(initial)


def slope(epochs, accs, last=SLOPE_EPOCHS):
    """Least-squares slope of the accuracy over the last ``last`` epochs (accuracy per epoch);
    None with fewer than two epochs."""
    epochs, accs = np.asarray(epochs[-last:], float), np.asarray(accs[-last:], float)
    if len(epochs) < 2:
        return None
    return float(np.polyfit(epochs, accs, 1)[0])


def collect(rows, folder, probe_size):
    """Per run: its key, metrics, zero fractions, digests, slope."""
    runs = {}
    for row in rows:
        key = (row["model_options.arch"], row["method"], float(row["model_options.sigma"]))
        run_dir = folder / "runs" / row["run_dir"]
        metrics = common.metrics_of(run_dir)
        zeros, initial_digest, final_digest, initial_acc, layers = probe_run(run_dir, probe_size)
        epochs = [m["epoch"] for m in metrics]
        accs = [m["test_acc"] for m in metrics]
        runs[key] = {
            "row": row,
            "metrics": metrics,
            "zeros": zeros,
            "initial_digest": initial_digest,
            "final_digest": final_digest,
            "slope": slope(epochs, accs),
            "initial_acc": initial_acc,
            "step_layers": layers,
        }
    return runs


# --------------------------------------------------------------------------------------------
# the figure


def _noise_label(sigma):
    return f"noise {sigma:g}" if sigma > 0 else "no noise"


def plot(runs, mode, folder):
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for row_axes, arch in zip(axes, MODELS):
        bars, curves, zeros = row_axes
        # final test accuracy: {LFP, GD} x {no noise, noise}, the paper's numbers as markers
        labels = []
        for i, (method, sigma) in enumerate((m, s) for m in METHODS for s in NOISES):
            run = runs[(arch, method, sigma)]
            acc = run["metrics"][-1]["test_acc"] if run["metrics"] else float("nan")
            bars.bar(i, acc, color=COLORS[method], hatch="//" if sigma > 0 else None,
                     alpha=0.8, edgecolor="black")  # fmt: skip
            bars.text(i, acc + 0.02, f"{acc:.3f}", ha="center", fontsize=8)
            low, high = PAPER[(arch, method, sigma)]
            bars.plot([i - 0.35, i + 0.35], [low, low], "k--", lw=1)
            if high != low:
                bars.plot([i - 0.35, i + 0.35], [high, high], "k--", lw=1)
            labels.append(f"{LABELS[method]}\n{_noise_label(sigma)}")
        epochs_run = len(runs[(arch, "lfp", SIGMA)]["metrics"])
        bars.set_xticks(range(len(labels)), labels)
        bars.set(ylim=(0, 1), ylabel="test accuracy after the last epoch")
        title = f"{MODEL_LABELS[arch]}: test accuracy after {epochs_run} epochs\n"
        title += f"(dashed: the authors' curves after {PAPER_EPOCHS[arch]} epochs)"
        bars.set_title(title)
        # accuracy vs epoch with the slope over the last epochs
        for method in METHODS:
            for sigma in NOISES:
                run = runs[(arch, method, sigma)]
                xs = [0] + [m["epoch"] for m in run["metrics"]]
                ys = [_initial_acc(run)] + [m["test_acc"] for m in run["metrics"]]
                label = f"{LABELS[method]}, {_noise_label(sigma)}"
                if run["slope"] is not None:
                    label += f": slope {100 * run['slope']:+.2f} %/epoch"
                curves.plot(xs, ys, "-" if sigma > 0 else "--", color=COLORS[method],
                            marker="o" if len(xs) < 30 else None, ms=3, label=label)  # fmt: skip
        paper = PAPER[(arch, "lfp", SIGMA)][0]
        last_epoch = max(len(runs[(arch, m, s)]["metrics"]) for m in METHODS for s in NOISES)
        curves.axhline(paper, color="gray", lw=0.8, ls=":")
        curves.text(last_epoch, paper + 0.01, f"the authors: LFP with noise, {PAPER_EPOCHS[arch]} "
                    "epochs", fontsize=7, color="gray", ha="right")  # fmt: skip
        curves.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
        curves.set_title(f"test accuracy (slope: last {SLOPE_EPOCHS} epochs)")
        curves.legend(fontsize=7, loc="upper left")
        # zero fractions per Step layer
        layer_names = [k for k in runs[(arch, "lfp", SIGMA)]["zeros"][0] if k != "epoch"]
        cmap = plt.get_cmap("viridis")
        for j, layer in enumerate(layer_names):
            color = cmap(j / max(1, len(layer_names) - 1))
            for method, sigma, style, width in (
                ("lfp", SIGMA, "-", 1.6),
                ("lfp", 0.0, "--", 1.2),
                ("gd", SIGMA, ":", 1.0),
            ):
                rows = runs[(arch, method, sigma)]["zeros"]
                label = f"{layer}: {LABELS[method]}, {_noise_label(sigma)}"
                zeros.plot([r["epoch"] for r in rows], [r[layer] for r in rows], style,
                           color=color, lw=width, label=label)  # fmt: skip
        zeros.set(xlabel="epoch", ylabel="fraction of zero outputs (eval mode)", ylim=(-0.02, 1.02))
        zeros.set_title("zero activations per Step layer (first test images)")
        zeros.legend(fontsize=6, ncol=2 if len(layer_names) > 3 else 1, loc="best")
    fig.suptitle(f"Step networks on MNIST, LFP vs GD, with and without input noise ({mode} mode)")
    fig.tight_layout()
    return common.save_figure(fig, NAME, folder, mode)


def _initial_acc(run):
    return run["initial_acc"]


# --------------------------------------------------------------------------------------------


def main(argv=None):
    parser = common.parser(
        __doc__,
        data_root="folder holding mnist/ (default: LFP_REF_DATA or the user cache)",
    )
    args = parser.parse_args(argv)
    mode = common.mode_of(args)
    with common.Timer(NAME, mode):
        folder = common.out_dir(NAME, args)
        base = base_config(mode, args.data_root)
        rows = common.run_grid(
            points(mode), base, folder / "runs", common.workers_of(args), f"step ({mode})"
        )
        settings = MODE_SETTINGS[mode]
        runs = collect(rows, folder, settings["probe_size"])
        finals, curves, zeros = [], [], []
        for (arch, method, sigma), run in runs.items():
            metrics = run["metrics"]
            low, high = PAPER[(arch, method, sigma)]
            finals.append(
                {
                    "model": arch,
                    "method": method,
                    "sigma": sigma,
                    "status": run["row"]["status"],
                    "epochs": len(metrics),
                    "initial_test_acc": run["initial_acc"],
                    "final_test_acc": metrics[-1]["test_acc"] if metrics else None,
                    "best_test_acc": run["row"]["best_test_acc"],
                    "final_train_acc": metrics[-1]["train_acc"] if metrics else None,
                    "slope_per_epoch": run["slope"],
                    "seconds_per_epoch": (
                        float(np.mean([m["wall_time"] for m in metrics])) if metrics else None
                    ),
                    "paper_epochs": PAPER_EPOCHS[arch],
                    "paper_low": low,
                    "paper_high": high,
                }
            )
            for m in metrics:
                curves.append({"model": arch, "method": method, "sigma": sigma, **m})
            for r in run["zeros"]:
                for layer, fraction in r.items():
                    if layer != "epoch":
                        zeros.append(
                            {
                                "model": arch,
                                "method": method,
                                "sigma": sigma,
                                "epoch": r["epoch"],
                                "layer": layer,
                                "after": run["step_layers"][layer],
                                "zero_fraction": fraction,
                            }
                        )
        common.write_csv(folder / "final.csv", finals)
        common.write_csv(folder / "curves.csv", curves)
        common.write_csv(folder / "zeros.csv", zeros)
        summary = {
            "mode": mode,
            "settings": {
                **{k: v for k, v in base.to_dict().items() if v is not None},
                "epochs": settings["epochs"],
                "sigma": SIGMA,
                "probe_size": settings["probe_size"],
                "slope_epochs": SLOPE_EPOCHS,
            },
            "paper": PAPER_TEXT,
            "paper_epochs": PAPER_EPOCHS,
            "step_layers": {arch: runs[(arch, "lfp", 0.0)]["step_layers"] for arch in MODELS},
            "runs": {
                f"{arch}/{method}/sigma={sigma:g}": {
                    **{k: v for k, v in f.items() if k not in ("model", "method", "sigma")},
                    "test_acc": [m["test_acc"] for m in runs[(arch, method, sigma)]["metrics"]],
                    "initial_weights_digest": runs[(arch, method, sigma)]["initial_digest"],
                    "final_weights_digest": runs[(arch, method, sigma)]["final_digest"],
                    "final_zero_fractions": {
                        k: v
                        for k, v in runs[(arch, method, sigma)]["zeros"][-1].items()
                        if k != "epoch"
                    },
                }
                for f in finals
                for arch, method, sigma in [(f["model"], f["method"], f["sigma"])]
            },
        }
        common.write_json(folder / "summary.json", summary)
        plot(runs, mode, folder)
        for f in finals:
            slope_text = (
                "-" if f["slope_per_epoch"] is None else f"{100 * f['slope_per_epoch']:+.2f}"
            )
            print(
                f"{f['model']:5s} {f['method']:3s} sigma={f['sigma']:<4g} epochs {f['epochs']:3d}: "
                f"test acc {f['final_test_acc']:.4f} (best {f['best_test_acc']:.4f}), slope "
                f"{slope_text} %/epoch, {f['seconds_per_epoch']:.1f} s/epoch"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
