"""Example 2: LFP with a non-default rule and reward: a small CNN on the 8x8 digits.

    python examples/02_rules_and_rewards.py

Rule: zennit's EpsilonPlus composite (ZPlus for the convolution, LFP-epsilon for the dense layer).
Reward:
``bounded_softmax(higher=0.9)``, which stops rewarding a class once its probability is above 0.9
(the default ``softmax_loss`` keeps pushing). Needs scikit-learn for the digits (the data extra).
"""

import numpy as np

import lfp_ref as lfp

data = lfp.data.load("digits", seed=0, dtype=np.float64)  # (N, 1, 8, 8) in [0, 1], 10 classes
rng = np.random.default_rng(0)
model = lfp.Sequential(
    lfp.Conv2d(1, 8, 3, padding=1, rng=rng), lfp.ReLU(), lfp.MaxPool2d(2),  # -> (8, 4, 4)
    lfp.Flatten(), lfp.Dense(8 * 4 * 4, data.num_classes, rng=rng),
)  # fmt: skip

composite = "EpsilonPlus"  # Conv2d: ZPlus, Dense: LFP-epsilon
print(f"rule: composite {composite}")
reward = lfp.rewards.bounded_softmax(lower=0.0, higher=0.9)
print(f"reward: {reward.__name__}")

optimizer = lfp.optim.SGD(model, lr=0.05, momentum=0.9)
for epoch in range(5):
    for xb, yb in lfp.data.batches(data.x_train, data.y_train, 32, seed=0, epoch=epoch):
        lfp.lfp_step(model, optimizer, xb, yb, reward=reward, clip_norm=3.0, composite=composite)
    train = float(np.mean(model(data.x_train).argmax(axis=1) == data.y_train))
    print(f"epoch {epoch + 1}: train accuracy {train:.3f}")
test = float(np.mean(model(data.x_test).argmax(axis=1) == data.y_test))
print(f"test accuracy: {test:.3f}")
