"""``lfp-ref verify``: check the paper's claims about LFP numerically on random networks.

::

    lfp-ref verify --seed 0

Prints :func:`lfp_ref.theory.to_table` (conservation, implicit weight scaling, secant slope,
update sparsity, descent: the measured error of each against its tolerance); exit status 0 when
every check passed, 1 otherwise. Needs only the core. The claims are stated in section 5.5,
"Properties the tests check", of lfp_ref's numerical contract, docs/numerical-contract.md in the
source repository.
"""

from __future__ import annotations

import argparse

from .train import nonnegative_int


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "verify",
        help="check LFP's properties (conservation, weight scaling, descent, ...) numerically",
        description=(
            "Check LFP's properties on small random networks: conservation per layer, the "
            "implicit-weight-scaling identity for piecewise-linear networks, the secant-slope "
            "identity for Tanh/SiLU/ELU/Sigmoid/Step, update sparsity, and the descent property. "
            "Prints the measured error of each. The properties are stated in section 5.5, "
            "'Properties the tests check', of lfp_ref's numerical contract: the file "
            "docs/numerical-contract.md in the lfp_ref source repository (not installed with "
            "the package)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of the random networks (>= 0)"
    )
    parser.add_argument(
        "--format", choices=("plain", "markdown"), default="plain", help="table style"
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    from ..verify import theory

    checks = theory.run_all(args.seed)
    print(theory.to_table(checks, args.format))
    return 0 if all(check.passed for check in checks) else 1
