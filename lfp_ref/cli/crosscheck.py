"""``lfp-ref crosscheck``: compare lfp_ref with lfprop 1.0.0, zennit 0.5.1 and torch autograd.

::

    lfp-ref crosscheck --model all --seed 0           # every cross-check model
    lfp-ref crosscheck --model lenet --format markdown

Prints :meth:`lfp_ref.crosscheck.Report.to_table`; exit status 0 when every comparison passed,
1 on a mismatch, 2 when the crosscheck extra (torch, lfprop, zennit) is not installed.
"""

from __future__ import annotations

import argparse

from . import CLIError

MODEL_NAMES = ("mlp", "lenet", "vgg-small", "resnet-small", "all")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "crosscheck",
        help="compare lfp_ref with lfprop, zennit and torch autograd, parameter by parameter",
        description=(
            "Run lfp_ref and the public PyTorch packages on the same small model and batch, in "
            "float64: LFP-epsilon feedback vs lfprop 1.0.0 (sum, and the older mean), LRP "
            "relevances per composite vs zennit 0.5.1, gradients vs torch autograd. Prints the "
            "largest absolute and relative difference per parameter and exits non-zero on a "
            "mismatch. Needs the crosscheck extra (make crosscheck)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", choices=MODEL_NAMES, default="all", help="model to check")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch")
    parser.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="lfp_ref's dtype (the peers always compute in float64)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="samples in the batch")
    parser.add_argument(
        "--format", choices=("plain", "markdown"), default="plain", help="table style"
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    from ..verify import peers

    if args.batch_size < 2:
        raise CLIError(
            f"--batch-size must be at least 2 (train-mode BatchNorm), got {args.batch_size}"
        )
    missing = peers.missing_peer()
    if missing is not None:
        raise CLIError(f"install the crosscheck extra: make crosscheck ({missing} is missing)")
    from ..verify.crosscheck import crosscheck_model

    report = crosscheck_model(
        args.model, seed=args.seed, batch_size=args.batch_size, dtype=args.dtype
    )
    print(report.to_table(args.format))
    return 0 if report.passed else 1
