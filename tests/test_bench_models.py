"""benchmarks/models.py and benchmarks/peers.py on the residual benchmark model: the FLOP count
walks into residual blocks, and lfprop's step splits the reward at each block's addition."""

import numpy as np
import pytest

from benchmarks import models


def test_contraction_flops_count_the_convolutions_inside_residual_blocks():
    model = models.build("resnet-small")
    x, _ = models.batch("resnet-small", batch_size=2)
    found = models._contraction_flops(model, x)
    # stem, two convs per block, the 1x1 shortcut, the classifier
    assert [type(layer).__name__ for layer, _ in found] == ["Conv2d"] * 6 + ["Dense"]
    stem = 2 * 2 * 16 * 32 * 32 * (3 * 3 * 3)  # 2 B O Ho Wo C kh kw
    shortcut = 2 * 2 * 32 * 16 * 16 * 16  # 1x1, stride 2
    assert found[0][1] == stem
    assert shortcut in [flops for _, flops in found]
    assert models.gemm_flops(model, x) == sum(flops for _, flops in found)
    assert models.training_gemm_flops(model, x) == 3 * models.gemm_flops(model, x) - stem


@pytest.mark.crosscheck
def test_lfprop_step_gives_each_residual_addition_lfprops_sum():
    pytest.importorskip("lfprop")
    from lfprop.model.custom_resnet import Sum as LfpropSum

    from benchmarks import peers
    from lfp_ref.verify.interop import TorchSum, to_torch

    model = to_torch(models.build("resnet-small"))
    assert sum(isinstance(m, TorchSum) for m in model.modules()) == 2
    before = [p.detach().clone() for p in model.parameters()]
    step = peers.lfprop_step(model, lr=0.1, momentum=0.0, clip_norm=3.0)
    assert sum(isinstance(m, TorchSum) for m in model.modules()) == 0
    assert sum(isinstance(m, LfpropSum) for m in model.modules()) == 2
    step(*peers.as_tensors(*models.batch("resnet-small", batch_size=4)))
    after = list(model.parameters())
    assert all(np.isfinite(p.detach().numpy()).all() for p in after)
    assert any(not np.array_equal(a.detach().numpy(), b.numpy()) for a, b in zip(after, before))
