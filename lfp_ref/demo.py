"""A first demo: the paper's toy dense net (2-32-16-3, ReLU) trained on three swirls with LFP and
with gradient descent, from the same initial weights. ``python -m lfp_ref.demo``"""

import time

import numpy as np

import lfp_ref as lfp


def toy_net(seed, classes=3):
    rng = np.random.default_rng(seed)
    return lfp.Sequential(
        lfp.Dense(2, 32, rng=rng), lfp.ReLU(),
        lfp.Dense(32, 16, rng=rng), lfp.ReLU(),
        lfp.Dense(16, classes, rng=rng),
    )  # fmt: skip


def accuracy(model, x, y):
    return float(np.mean(model(x).argmax(axis=1) == y))


def train(method, data, epochs=60, lr=0.05, seed=0):
    model = toy_net(seed, data.num_classes)
    opt = lfp.optim.SGD(model, lr=lr, momentum=0.9)
    for epoch in range(epochs):
        for xb, yb in lfp.data.batches(data.x_train, data.y_train, 32, seed=seed, epoch=epoch):
            if method == "lfp":
                lfp.lfp_step(model, opt, xb, yb, reward="softmax_loss", clip_norm=3.0)
            else:
                lfp.gd_step(model, opt, xb, yb, loss="cross_entropy", clip_norm=3.0)
    return model


def main():
    data = lfp.data.load("swirls", seed=0, dtype=np.float64)
    print(
        f"data: {data.name}, {len(data.x_train)} train / {len(data.x_test)} test points, "
        f"{data.num_classes} classes"
    )
    print(f"{'method':<8} {'train acc':>9} {'test acc':>9} {'seconds':>8}")
    for method in ("lfp", "gd"):
        start = time.perf_counter()
        model = train(method, data)
        print(
            f"{method:<8} {accuracy(model, data.x_train, data.y_train):>9.3f} "
            f"{accuracy(model, data.x_test, data.y_test):>9.3f} "
            f"{time.perf_counter() - start:>8.1f}"
        )


if __name__ == "__main__":
    main()
