"""LFP under different LRP rules (lfp-spec.md section 5): the same small CNN, the same data,
seed and optimizer, trained with LFP-epsilon, z+, alpha2-beta1 and gamma.

Each non-epsilon rule is placed two ways:

- ``conv``: on the Conv2d layers only, the Dense layers keep epsilon: zennit's composite placement
  (z+ is the EpsilonPlus composite, alpha2-beta1 EpsilonAlpha2Beta1; gamma is the same with Gamma);
- ``all``: on every Conv2d and Dense layer, the output layer included ("z+ everywhere").

Why both: at the output layer the softmax_loss reward is ``r = z (Y - p)``; epsilon divides by
``z`` and hands ``Y - p`` on, but z+ and alpha-beta divide by ``z+`` (``> 0``), so the sign of the
logit stays in the feedback and a negative logit reverses its update. Gamma divides by a
denominator of z's sign and keeps training.

Prints a Markdown table and writes figures/out/rule_study.csv (rule, placement, train and test
accuracy, seconds). ``--quick`` is a smoke test (a subset, one epoch).

    python figures/rule_study.py [--quick] [--epochs N] [--seed S] [--dataset digits]
"""

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

import lfp_ref as lfp
from lfp_ref.composites import Composite
from lfp_ref.rules import Epsilon

RULES = ("epsilon", "zplus", "alpha2beta1", "gamma")
PLACEMENTS = ("conv", "all")
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "rule_study.csv"


def small_cnn(image_size, num_classes, seed):
    """Conv(1->8) ReLU AvgPool Conv(8->16) ReLU AvgPool Flatten Dense(->classes), torch init."""
    rng = np.random.default_rng(seed)
    features = 16 * (image_size // 4) ** 2
    return lfp.Sequential(
        lfp.Conv2d(1, 8, 3, padding=1, rng=rng),
        lfp.ReLU(),
        lfp.AvgPool2d(2),
        lfp.Conv2d(8, 16, 3, padding=1, rng=rng),
        lfp.ReLU(),
        lfp.AvgPool2d(2),
        lfp.Flatten(),
        lfp.Dense(features, num_classes, rng=rng),
    )


def assignment(rule, placement):
    """The ``feedback`` keyword that puts ``rule`` on the layers of ``placement``."""
    if rule == "epsilon":
        return {"rule": Epsilon()}
    if placement == "all":
        return {"rule": rule}  # every Dense and Conv2d; AvgPool keeps epsilon
    return {"composite": Composite(Epsilon(), layer_types={lfp.Conv2d: rule})}


def accuracy(model, x, y, batch_size=512):
    hits = 0
    for start in range(0, len(x), batch_size):
        predicted = model(x[start : start + batch_size]).argmax(axis=1)
        hits += int(np.sum(predicted == y[start : start + batch_size]))
    return hits / len(x)


def train(data, rule, placement, epochs, seed, lr, batch_size):
    model = small_cnn(data.x_train.shape[-1], data.num_classes, seed)
    opt = lfp.optim.SGD(model, lr=lr, momentum=0.9)
    how = assignment(rule, placement)
    for epoch in range(epochs):
        for xb, yb in lfp.data.batches(
            data.x_train, data.y_train, batch_size, seed=seed, epoch=epoch
        ):
            lfp.lfp_step(model, opt, xb, yb, reward="softmax_loss", clip_norm=3.0, **how)
    return accuracy(model, data.x_train, data.y_train), accuracy(model, data.x_test, data.y_test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 128 images, 1 epoch")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dataset", default="digits", choices=("digits", "mnist-subset"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    data = lfp.data.load(args.dataset, seed=args.seed, dtype=np.float64)
    epochs = args.epochs
    if args.quick:
        data.x_train, data.y_train = data.x_train[:128], data.y_train[:128]
        data.x_test, data.y_test = data.x_test[:64], data.y_test[:64]
        epochs = 1

    rows = []
    for rule in RULES:
        for placement in ("all",) if rule == "epsilon" else PLACEMENTS:
            start = time.perf_counter()
            train_acc, test_acc = train(
                data, rule, placement, epochs, args.seed, args.lr, args.batch_size
            )
            rows.append((rule, placement, train_acc, test_acc, time.perf_counter() - start))

    print(
        f"LFP rule study: {args.dataset}, {len(data.x_train)} train / {len(data.x_test)} test "
        f"images, {epochs} epochs, SGD lr {args.lr} momentum 0.9, clip 3.0, seed {args.seed}\n"
    )
    print("| rule | placement | train acc | test acc | seconds |")
    print("|---|---|---:|---:|---:|")
    for rule, placement, train_acc, test_acc, seconds in rows:
        print(f"| {rule} | {placement} | {train_acc:.3f} | {test_acc:.3f} | {seconds:.1f} |")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rule", "placement", "train_accuracy", "test_accuracy", "seconds"])
        for rule, placement, train_acc, test_acc, seconds in rows:
            writer.writerow(
                [rule, placement, f"{train_acc:.4f}", f"{test_acc:.4f}", f"{seconds:.2f}"]
            )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
