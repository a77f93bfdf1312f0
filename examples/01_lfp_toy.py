"""Example 1: train the paper's toy network with LFP on three swirls, in about 30 lines.

python examples/01_lfp_toy.py
"""

import numpy as np

import lfp_ref as lfp

data = lfp.data.load("swirls", seed=0, dtype=np.float64)  # 2-D points, 3 classes
rng = np.random.default_rng(0)
model = lfp.Sequential(
    lfp.Dense(2, 32, rng=rng), lfp.ReLU(),
    lfp.Dense(32, 16, rng=rng), lfp.ReLU(),
    lfp.Dense(16, data.num_classes, rng=rng),
)  # fmt: skip
optimizer = lfp.optim.SGD(model, lr=0.05, momentum=0.9)


def accuracy(x, y):
    return float(np.mean(model(x).argmax(axis=1) == y))


print(f"before training: test accuracy {accuracy(data.x_test, data.y_test):.3f}")
for epoch in range(30):
    for xb, yb in lfp.data.batches(data.x_train, data.y_train, 32, seed=0, epoch=epoch):
        # reward at the output -> feedback F for every weight -> the optimizer ascends F
        lfp.lfp_step(model, optimizer, xb, yb, reward="softmax_loss", clip_norm=3.0)
    if (epoch + 1) % 10 == 0:
        print(f"epoch {epoch + 1:2d}: train accuracy {accuracy(data.x_train, data.y_train):.3f}")
print(f"test accuracy: {accuracy(data.x_test, data.y_test):.3f}")
