"""``lfp-ref train``: train a model with LFP, gradient descent or another registered method;
``--resume`` continues a run from its last checkpoint, bit for bit.

    lfp-ref train --model lenet --data mnist --method lfp --epochs 3 --batch-size 128 --lr 0.1 \\
        --momentum 0.9 --clip 3.0 --reward softmax_loss --rule epsilon --seed 0 \\
        --dtype float32 --out runs/lenet-lfp
    lfp-ref train --model mymodels:build --model-option hidden=64 --data mydata:load \\
        --composite EpsilonPlus --out runs/mine
    lfp-ref train --model lenet --rule-for Conv2d=zplus --rule-for 0=flat --out runs/mixed
    lfp-ref train --resume runs/lenet-lfp

Every option is a field of :class:`lfp_ref.train.TrainConfig`, saved in the run's config.json;
``--resume`` and ``lfp-ref eval`` rebuild the run from it (a user factory is imported again by
its ``package.module:function`` string: keep it importable, e.g. on PYTHONPATH or in the current
folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from .. import methods, zoo
from ..train.config import TrainConfig
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


def _key_value(text):
    """``KEY=VALUE`` with VALUE read as JSON when it is JSON (``64``, ``0.5``, ``true``,
    ``[1, 2]``, ``{"low": 0}``), else as the string itself."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(value)
    except ValueError:
        pass
    return key.strip(), value


def _layer_rule(text):
    """``LAYER=RULE``: a layer name ("0", "2.branch.0"), a layer type ("Conv2d", "Dense") or
    "default", and a rule name."""
    key, sep, rule = text.partition("=")
    if not sep or not key.strip() or not rule.strip():
        raise argparse.ArgumentTypeError(
            f"expected LAYER=RULE such as Conv2d=zplus, 0=flat or default=epsilon, got {text!r}"
        )
    return key.strip(), rule.strip()


# CLI option -> (TrainConfig field, type, help); every one defaults to None so that --resume can
# tell which were given (the defaults themselves live in TrainConfig, in one place, and are
# shown in --help from there)
_CONFIG_OPTIONS = {
    "--model": (
        "model",
        str,
        f"zoo model ({', '.join(zoo.known_models())}) or a user factory "
        "package.module:function, called as f(num_classes=, input_shape=, seed=, dtype=, "
        "**model options)",
    ),
    "--data": (
        "data",
        str,
        "dataset name (lfp_ref.data: mnist, mnist-subset, swirls, ...) or a user loader "
        "package.module:function returning an lfp_ref.data.Dataset",
    ),
    "--method": (
        "method",
        str,
        f"training method registered in lfp_ref.methods ({', '.join(methods.known_methods())})",
    ),
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
    "--rule": ("rule", str, "LFP rule for every layer (lfp_ref.rules: epsilon, zplus, gamma, ...)"),
    "--composite": (
        "composite",
        str,
        "instead of --rule: a zennit composite (EpsilonPlus, EpsilonAlpha2Beta1, EpsilonPlusFlat, "
        "EpsilonAlpha2Beta1Flat, EpsilonGammaBox)",
    ),
    "--eps": ("eps", _number, "stabiliser of the epsilon rule"),
    "--activation": ("activation", str, "zoo models: relu, leakyrelu, tanh, sigmoid, silu, ..."),
    "--widths": ("widths", _widths, "zoo models: hidden widths / channels per stage, e.g. 256,128"),
    "--seed": ("seed", _nonnegative_int, "seed of the weights, data order and dropout"),
    "--dtype": ("dtype", str, "float32 or float64"),
    "--limit-train": ("limit_train", _positive_int, "train on the first N training samples"),
    "--limit-test": ("limit_test", _positive_int, "evaluate on the first N test samples"),
    "--data-root": ("data_root", str, "folder holding the dataset files"),
    "--checkpoint-every": ("checkpoint_every", _positive_int, "also checkpoint every N steps"),
    "--eval-every": ("eval_every", _positive_int, "test accuracy every N steps (curves)"),
}

# repeatable options that build a dict field: option -> (field, type, metavar, help)
_DICT_OPTIONS = {
    "--model-option": (
        "model_options",
        _key_value,
        "KEY=VALUE",
        "keyword argument of the zoo builder or the model factory (VALUE is read as JSON "
        "when it is JSON), e.g. dropout=0.25; repeatable",
    ),
    "--data-option": (
        "data_options",
        _key_value,
        "KEY=VALUE",
        "keyword argument of lfp_ref.data.load or the data loader, e.g. seed=1; repeatable",
    ),
    "--method-option": (
        "method_options",
        _key_value,
        "KEY=VALUE",
        "option of the method, e.g. batch_reduction=mean for lfp; repeatable",
    ),
    "--rule-for": (
        "rule_for",
        _layer_rule,
        "LAYER=RULE",
        "instead of --rule: the rule of a layer name (0, 2.branch.0) or layer type (Conv2d, "
        "Dense, ...); default=RULE for the other Dense/Conv2d layers (else epsilon); "
        "repeatable",
    ),
    "--rule-option": (
        "rule_options",
        _key_value,
        "KEY=VALUE",
        "option of the rule or composite, e.g. low=0 high=1 for zbox / EpsilonGammaBox; with "
        '--rule-for, RULE={"option": value}; repeatable',
    ),
}

# what --help says where the TrainConfig default is None
_DEFAULT_TEXT = {
    "rule": "epsilon unless --composite or --rule-for",
    "activation": "relu",
    "widths": "the model's",
    "limit_train": "all",
    "limit_test": "all",
    "data_root": "LFP_REF_DATA or the user cache",
    "checkpoint_every": "epoch ends only",
    "eval_every": "never",
    "composite": "none",
}


def _with_default(dest, text):
    field = {f.name: f for f in dataclasses.fields(TrainConfig)}[dest]
    default = _DEFAULT_TEXT.get(dest, field.default)
    if isinstance(default, tuple):
        default = ",".join(map(str, default))
    return f"{text} (default: {default})"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a model with LFP, gradient descent or another registered method",
        description=(
            "Train a zoo model or your own (--model package.module:function) on a named dataset "
            "or your own (--data package.module:function) with LFP, gradient descent or another "
            "method registered in lfp_ref.methods. Writes config.json (every option below: "
            "--resume and lfp-ref eval rebuild the run from it), metrics.csv (per epoch), "
            "steps.csv (per step) and last.npz (the checkpoint, written atomically) into --out. "
            "Factory modules are imported from PYTHONPATH or the current folder."
        ),
    )
    for option, (dest, kind, text) in _CONFIG_OPTIONS.items():
        parser.add_argument(
            option, dest=dest, type=kind, default=None, help=_with_default(dest, text)
        )
    for option, (dest, kind, metavar, text) in _DICT_OPTIONS.items():
        parser.add_argument(
            option, dest=dest, type=kind, action="append", default=None, metavar=metavar, help=text
        )
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


def _option_name(dest):
    for table in (_CONFIG_OPTIONS, _DICT_OPTIONS):
        for option, (name, *_) in table.items():
            if name == dest:
                return option
    return f"--{dest.replace('_', '-')}"


def _given_config(args):
    given = {
        dest: getattr(args, dest)
        for dest in [d for d, _, _ in _CONFIG_OPTIONS.values()] + ["keep_checkpoints"]
        if getattr(args, dest) is not None
    }
    for option, (dest, *_) in _DICT_OPTIONS.items():
        pairs = getattr(args, dest)
        if pairs is None:
            continue
        values = {}
        for key, value in pairs:
            if key in values:
                raise CLIError(f"{option} {key}=... is given twice")
            values[key] = value
        given[dest] = values
    return given


def importable_cwd():
    """Let ``package.module:function`` factories be imported from the current folder, as
    ``python -m`` would (appended: installed packages keep precedence)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def data_error_line(exc):
    """One line from a multi-line data-loading error, with what to do."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = first.removesuffix(" Looked in:").rstrip(".:")
    return (
        f"{first}; set LFP_REF_DATA=<dir> with the files in <dir>/<dataset>/, pass --data-root, "
        "add --download, or use --data mnist-subset (offline)"
    )


def _folder_name(name):
    return name.replace(":", ".").replace("/", "-")


def run(args):
    from ..data import DatasetNotFoundError, DownloadError
    from ..train import ConfigError, Trainer, TrainingDiverged
    from ..train.checkpoint import CheckpointError

    given = _given_config(args)
    show = not args.no_progress
    importable_cwd()
    try:
        if args.resume is not None:
            if given or args.out is not None or args.overwrite:
                extra = [_option_name(k) for k in given]
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
                out = Path("runs") / f"{_folder_name(c.model)}-{_folder_name(c.data)}-{c.method}"
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


def describe_rules(config):
    """The rule assignment of a validated config in a few words."""
    if config.composite is not None:
        return f"composite {config.composite}"
    if config.rule_for is not None:
        return "rules " + ", ".join(f"{k}={v}" for k, v in config.rule_for.items())
    return f"rule {config.rule}"


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
        f"training {c.model} ({n_params:,} parameters) with {c.method}"
        f"{' ' + str(c.method_options) if c.method_options else ''} "
        f"({describe_rules(c)}, reward {c.reward}) on {ds.name} "
        f"({len(trainer.y_train)} train / {len(trainer.y_test)} test samples; {ds.source}); "
        f"{settings}; writing {trainer.out}"
    )
