"""``lfp-ref verify``: check the paper's claims about LFP numerically on random networks.

::

    lfp-ref verify --seed 0
    lfp-ref verify --snn          # and the spiking networks' checks, with the reward's shares

Prints :func:`lfp_ref.theory.to_table` (conservation, implicit weight scaling, secant slope,
update sparsity, descent: the measured error of each against its tolerance); exit status 0 when
every check passed, 1 otherwise. ``--snn`` adds the spiking networks' checks
(:func:`lfp_ref.verify.theory.snn_checks`: the SNN-LFP recursion against a literal oracle
unrolled in time, the balance of the per-step accounts) to the table and prints after it where
the reward goes in each LIF layer (:func:`lfp_ref.verify.theory.shares_table`: measured, the
rule is not conservative). Needs only the core. The claims are stated in section 5.5,
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
    parser.add_argument(
        "--snn",
        action="store_true",
        help="also check LFP through spiking networks (the recursion against a literal oracle "
        "unrolled in time, the per-step accounts) and print the reward's measured shares per "
        "LIF layer",
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    from ..verify import theory

    checks = theory.run_all(args.seed)
    rows = None
    if args.snn:
        check, rows = theory.snn_shares(args.seed)
        checks += [theory.snn_recursion(args.seed), check]
    print(theory.to_table(checks, args.format))
    if rows is not None:
        print("\nWhere the reward goes in each LIF layer (random spiking networks, seed "
              f"{args.seed}):\n")  # fmt: skip
        print(theory.shares_table(rows, args.format))
    return 0 if all(check.passed for check in checks) else 1
