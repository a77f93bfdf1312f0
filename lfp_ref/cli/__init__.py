"""The ``lfp-ref`` command line. Each subcommand lives in its own module of this package and
provides ``add_parser(subparsers)`` (registering ``run(args) -> int`` as the default ``func``)."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand module names, in the order ``lfp-ref --help`` lists them
SUBCOMMANDS = ("train", "eval", "compare", "export", "crosscheck", "verify", "explain", "sweep")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2, no traceback."""


def one_line_errors(parser):
    """Report a bad argument as one line (``lfp-ref train: error: ...``) and exit with status 2,
    instead of argparse's usage block."""

    def error(message):
        print(f"{parser.prog}: error: {message} (see {parser.prog} --help)", file=sys.stderr)
        sys.exit(2)

    parser.error = error
    return parser


def version_text():
    """``lfp-ref X.Y.Z (Python ..., NumPy ..., Numba ...)``, read from the installed packages'
    metadata (nothing heavy is imported)."""
    import platform
    from importlib import metadata

    def version(name, fallback="not installed"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return fallback

    return (
        f"lfp-ref {version('lfp_ref', '0+unknown')} (Python {platform.python_version()}, "
        f"NumPy {version('numpy')}, Numba {version('numba')})"
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="lfp-ref", description="Layer-wise Feedback Propagation, the reference implementation."
    )
    parser.add_argument(
        "--version", action="version", version=version_text(), help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"lfp_ref.cli.{name}").add_parser(sub)
    for command_parser in (parser, *sub.choices.values()):
        one_line_errors(command_parser)
    return parser


def main(argv=None):
    from ..runtime import tune_allocator

    tune_allocator()  # freed arrays reused across steps (lfp_ref.runtime)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CLIError as err:
        print(f"lfp-ref {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only or full file system, a missing permission
        where = f"{err.filename}: " if err.filename else ""
        print(f"lfp-ref {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lfp-ref {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
