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

Each run is a :class:`lfp_ref.train.TrainConfig` trained by :func:`lfp_ref.train.fit`: the zoo's
``small-cnn`` (Conv(1->8) ReLU AvgPool Conv(8->16) ReLU AvgPool Flatten Dense), float64, SGD with
momentum 0.9, clip 3.0, the softmax_loss reward; ``conv`` is ``rule_for={"Conv2d": rule}``, ``all``
is ``rule=rule``. The accuracies are the trainer's eval-mode train/test accuracy after the last
epoch.

Prints a Markdown table and writes figures/out/rule_study.csv (rule, placement, train and test
accuracy, seconds). ``--quick`` is a smoke test (a subset, one epoch).

    python figures/rule_study.py [--quick] [--epochs N] [--seed S] [--dataset digits]
"""

import argparse
import csv
import sys
import time
from pathlib import Path

from lfp_ref.train import TrainConfig, fit, load_data

RULES = ("epsilon", "zplus", "alpha2beta1", "gamma")
PLACEMENTS = ("conv", "all")
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "rule_study.csv"
MODEL = "small-cnn"


def assignment(rule, placement):
    """The TrainConfig fields that put ``rule`` on the layers of ``placement``."""
    if rule == "epsilon" or placement == "all":
        return {"rule": rule}  # every Dense and Conv2d; AvgPool keeps epsilon
    return {"rule_for": {"Conv2d": rule}}  # the Dense layer keeps epsilon


def config(rule, placement, args, quick=False):
    """The run of one rule and placement."""
    return TrainConfig(
        model=MODEL,
        data=args.dataset,
        data_options={"seed": args.seed},  # the train/test split's seed
        method="lfp",
        epochs=1 if quick else args.epochs,
        batch_size=args.batch_size,
        optimizer="sgd",
        lr=args.lr,
        momentum=0.9,
        clip=3.0,
        reward="softmax_loss",
        seed=args.seed,
        dtype="float64",
        limit_train=128 if quick else None,
        limit_test=64 if quick else None,
        **assignment(rule, placement),
    )


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

    data = None  # loaded once, shared by every run
    rows = []
    for rule in RULES:
        for placement in ("all",) if rule == "epsilon" else PLACEMENTS:
            run = config(rule, placement, args, args.quick)
            if data is None:
                data = load_data(run.validated())
            start = time.perf_counter()
            trainer = fit(run, data=data, progress=False, log=lambda line: None)
            last = trainer.history[-1]
            seconds = time.perf_counter() - start
            rows.append((rule, placement, last["train_acc"], last["test_acc"], seconds))

    print(
        f"LFP rule study: {args.dataset}, {len(trainer.y_train)} train / {len(trainer.y_test)} "
        f"test images, {run.epochs} epochs, SGD lr {args.lr} momentum 0.9, clip 3.0, seed "
        f"{args.seed}\n"
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
