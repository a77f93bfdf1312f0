"""Example 3: load a torch model into lfp_ref and cross-check its LFP feedback against lfprop.

    python examples/03_torch_crosscheck.py

Needs the crosscheck extra (torch, lfprop 1.0.0, zennit 0.5.1): ``make setup-crosscheck``. The
torch model becomes an lfp_ref model with the same weights and state-dict names
(``lfp_ref.interop.from_torch``); then lfp_ref's feedback is compared with lfprop's
LFPEpsilonComposite, in float64. Exits with status 1 if they differ by more than 1e-10 (relative).
"""

import sys

import numpy as np
import torch

import lfp_ref as lfp
from lfp_ref.interop import from_torch
from lfp_ref.peers import lfprop_feedback

torch.manual_seed(0)
torch_model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 16), torch.nn.ReLU(),
    torch.nn.Linear(16, 3),
).double()  # fmt: skip

model = from_torch(torch_model)  # same weights, same state-dict names

rng = np.random.default_rng(0)
x, y = rng.normal(size=(8, 1, 8, 8)), rng.integers(0, 3, size=8)
ours = lfp.feedback(model, x, y, reward="softmax_loss", eps=1e-6).params
theirs = lfprop_feedback(torch_model, x, y, reward="softmax_loss", eps=1e-6)

worst = 0.0
print(f"{'parameter':<10} {'max |F|':>10} {'max rel. difference':>20}")
for name, value in ours.items():
    scale = np.abs(theirs[name]).max()
    difference = np.abs(value - theirs[name]).max() / scale
    worst = max(worst, difference)
    print(f"{name:<10} {scale:>10.3e} {difference:>20.1e}")
print(f"max relative difference lfp_ref vs lfprop 1.0.0: {worst:.1e}")
sys.exit(0 if worst <= 1e-10 else 1)
