"""lfp_ref.runtime: the allocator setting is applied once, can be turned off, and changes no
number."""

import subprocess
import sys

import numpy as np
import pytest

import lfp_ref as lfp


def _run(code, **env):
    import os

    environ = {k: v for k, v in os.environ.items() if k != "LFP_REF_MALLOC"}
    environ.update(env)
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tune_allocator_applies_once_and_can_be_turned_off():
    code = "import lfp_ref; print(lfp_ref.tune_allocator(), lfp_ref.tune_allocator())"
    glibc = bool(__import__("platform").libc_ver()[0] == "glibc")
    assert _run(code) == [str(glibc)] * 2
    assert _run(code, LFP_REF_MALLOC="default") == ["False", "False"]


def test_a_step_is_the_same_with_and_without_the_setting():
    code = (
        "import numpy as np, lfp_ref as lfp\n"
        "lfp.tune_allocator()\n"
        "m = lfp.zoo.build('lenet-5', num_classes=10, input_shape=(1, 28, 28), dtype=np.float64)\n"
        "o = lfp.optim.SGD(m, lr=0.1, momentum=0.9)\n"
        "rng = np.random.default_rng(0)\n"
        "x, y = rng.random((8, 1, 28, 28)), rng.integers(0, 10, 8)\n"
        "for _ in range(3): lfp.lfp_step(m, o, x, y, clip_norm=3.0)\n"
        "print(float(sum(np.abs(v).sum() for v in m.state_dict().values())).hex())\n"
    )
    assert _run(code) == _run(code, LFP_REF_MALLOC="default")
    assert lfp.tune_allocator in (lfp.runtime.tune_allocator,)
    assert np.isfinite(float.fromhex(_run(code)[0]))
