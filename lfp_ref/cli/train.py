"""``lfp-ref train``: train a zoo model with LFP or gradient descent; ``--resume`` continues a
run from its last checkpoint, bit for bit.

    lfp-ref train --model lenet --data mnist --method lfp --epochs 3 --batch-size 128 --lr 0.1 \\
        --momentum 0.9 --clip 3.0 --reward softmax_loss --rule epsilon --seed 0 \\
        --dtype float32 --out runs/lenet-lfp
    lfp-ref train --resume runs/lenet-lfp
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from . import CLIError

#: exit status of a run stopped by non-finite values (CLIError's usage errors exit with 2)
EXIT_DIVERGED = 1


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _widths(text):
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 256,128, got {text!r}"
        ) from None
    if min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


# CLI option -> TrainConfig field; every one defaults to None so that --resume can tell which
# were given (the defaults themselves live in TrainConfig, in one place)
_CONFIG_OPTIONS = {
    "--model": ("model", str, "zoo model: toy, mlp, lenet, vgg-small, resnet-small"),
    "--data": ("data", str, "dataset name (lfp_ref.data): mnist, mnist-subset, swirls, ..."),
    "--method": ("method", str, "lfp (feedback propagation) or gd (gradient descent)"),
    "--epochs": ("epochs", _positive_int, "number of epochs"),
    "--batch-size": ("batch_size", _positive_int, "mini-batch size"),
    "--optimizer": ("optimizer", str, "sgd, adam or adamw"),
    "--lr": ("lr", _number, "learning rate (the maximum lr with --scheduler onecycle)"),
    "--momentum": ("momentum", _number, "SGD momentum"),
    "--weight-decay": ("weight_decay", _number, "weight decay (L2 for sgd/adam, decoupled adamw)"),
    "--scheduler": ("scheduler", str, "none, onecycle (per batch) or steplr (per epoch)"),
    "--step-size": ("step_size", _positive_int, "steplr: decay every N epochs"),
    "--gamma": ("gamma", _number, "steplr: decay factor"),
    "--clip": ("clip", _number, "global L2 clipping of the update (0: no clipping)"),
    "--reward": ("reward", str, "LFP reward at the output (lfp_ref.rewards)"),
    "--rule": ("rule", str, "LFP propagation rule"),
    "--eps": ("eps", _number, "stabiliser of the epsilon rule"),
    "--activation": ("activation", str, "relu, leakyrelu, tanh, sigmoid, silu, elu, step"),
    "--widths": ("widths", _widths, "hidden widths / channels per stage, e.g. 256,128"),
    "--seed": ("seed", _nonnegative_int, "seed of the weights, data order and dropout"),
    "--dtype": ("dtype", str, "float32 or float64"),
    "--limit-train": ("limit_train", _positive_int, "train on the first N training samples"),
    "--limit-test": ("limit_test", _positive_int, "evaluate on the first N test samples"),
    "--data-root": ("data_root", str, "folder holding the dataset files"),
    "--checkpoint-every": ("checkpoint_every", _positive_int, "also checkpoint every N steps"),
    "--eval-every": ("eval_every", _positive_int, "test accuracy every N steps (curves)"),
}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a model with LFP or gradient descent",
        description=(
            "Train a zoo model with LFP or gradient descent. Writes config.json, metrics.csv "
            "(per epoch), steps.csv (per step) and last.npz (the checkpoint, written atomically) "
            "into --out. Defaults: lenet on mnist, lfp, 3 epochs, batch 128, sgd lr 0.1 "
            "momentum 0.9, clip 3.0, softmax_loss reward, epsilon rule, seed 0, float32."
        ),
    )
    for option, (dest, kind, text) in _CONFIG_OPTIONS.items():
        parser.add_argument(option, dest=dest, type=kind, default=None, help=text)
    parser.add_argument(
        "--keep-checkpoints",
        dest="keep_checkpoints",
        action="store_const",
        const=True,
        default=None,
        help="also keep one checkpoint per epoch (epoch-NNN.npz)",
    )
    parser.add_argument("--out", type=Path, help="run folder (default runs/MODEL-DATA-METHOD)")
    parser.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in RUN")
    parser.add_argument(
        "--max-steps",
        type=_positive_int,
        help="stop after N optimizer steps in total (checkpointed; continue with --resume)",
    )
    parser.add_argument(
        "--download", action="store_true", help="download a missing dataset (sha256-checked)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start afresh in an --out that holds a run"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _given_config(args):
    return {
        dest: getattr(args, dest)
        for dest in [d for d, _, _ in _CONFIG_OPTIONS.values()] + ["keep_checkpoints"]
        if getattr(args, dest) is not None
    }


def data_error_line(exc):
    """One line from a multi-line data-loading error, with what to do."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = first.removesuffix(" Looked in:").rstrip(".:")
    return (
        f"{first}; set LFP_REF_DATA=<dir> with the files in <dir>/<dataset>/, pass --data-root, "
        "add --download, or use --data mnist-subset (offline)"
    )


def run(args):
    from ..data import DatasetNotFoundError, DownloadError
    from ..train import ConfigError, TrainConfig, Trainer, TrainingDiverged
    from ..train.checkpoint import CheckpointError

    given = _given_config(args)
    show = not args.no_progress
    try:
        if args.resume is not None:
            if given or args.out is not None or args.overwrite:
                extra = [f"--{k.replace('_', '-')}" for k in given]
                extra += ["--out"] * (args.out is not None) + ["--overwrite"] * args.overwrite
                raise CLIError(
                    f"--resume continues {args.resume} with its saved configuration; drop "
                    f"{', '.join(extra)} (or start a new run with --out)"
                )
            trainer = Trainer.resume(args.resume, progress=show, download=args.download)
            if trainer.done:
                print(f"{args.resume}: already complete ({trainer.epoch} epochs); nothing to do")
                return 0
            print(
                f"resuming {args.resume} at epoch {trainer.epoch + 1}, batch {trainer.batch}, "
                f"step {trainer.step}"
            )
        else:
            if given.get("clip") == 0:
                given["clip"] = None
            if "momentum" in given and given.get("optimizer", "sgd").lower() != "sgd":
                raise CLIError(
                    "--momentum is SGD's; Adam and AdamW use betas (0.9, 0.999): drop "
                    "--momentum or use --optimizer sgd"
                )
            config = TrainConfig(**given)
            if args.out is None:
                c = config.validated()
                out = Path("runs") / f"{c.model}-{c.data}-{c.method}"
            else:
                out = args.out
            trainer = Trainer(config, out=out, progress=show, overwrite=args.overwrite,
                              download=args.download)  # fmt: skip
            _describe(trainer)
        trainer.run(max_steps=args.max_steps)
    except (DatasetNotFoundError, DownloadError) as exc:
        raise CLIError(data_error_line(exc)) from None
    except (ConfigError, CheckpointError, ImportError) as exc:
        raise CLIError(str(exc).strip().replace("\n", " ")) from None
    except TrainingDiverged as exc:
        print(f"lfp-ref train: stopped: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    if trainer.done:
        print(f"done: {trainer.out} (config.json, metrics.csv, steps.csv, last.npz)")
    else:
        print(
            f"stopped after step {trainer.step} (--max-steps); continue with "
            f"lfp-ref train --resume {trainer.out}"
        )
    return 0


def _describe(trainer):
    c, ds = trainer.config, trainer.dataset
    n_params = sum(p.size for _, p in trainer.model.named_parameters())
    fields = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    settings = ", ".join(
        f"{k}={v}"
        for k, v in fields.items()
        if k in ("optimizer", "lr", "momentum", "scheduler", "clip", "batch_size", "dtype", "seed")
    )
    print(
        f"training {c.model} ({n_params:,} parameters) with {c.method} on {ds.name} "
        f"({len(trainer.y_train)} train / {len(trainer.y_test)} test samples; {ds.source}); "
        f"{settings}; writing {trainer.out}"
    )
