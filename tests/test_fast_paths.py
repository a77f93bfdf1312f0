"""The per-step fast paths agree with the code they shortcut.

- every kernel check (``lfp_ref.kernels.checks``) tries a fast path before its detailed check
  (``_*_in_detail``): over a grid of good and bad arguments the fast path must accept only what
  the detailed check accepts, and return the same thing (errors come from the detailed check);
- the pooling wrappers' combined fast check against their detailed checks;
- the walks the training step uses (``Layer._layer_list`` and ``Layer._parameter_dict``, which
  cache nothing) against ``named_layers()`` / ``named_parameters()``, on models of every kind
  and after the model changes (layers replaced or appended, parameters rebound, ``.to(dtype)``,
  ``load_state_dict``);
- ``backend_of``'s NumPy shortcut and the CPU backend's allocation functions.
"""

import copy
import itertools

import numpy as np
import pytest

import lfp_ref as lfp
from lfp_ref import engine, optim, zoo
from lfp_ref.kernels import CPU, Backend, backend_of, checks
from lfp_ref.kernels.cpu import dense as dense_kernels
from lfp_ref.kernels.cpu import pool as pool_kernels
from lfp_ref.layers.base import Layer
from lfp_ref.layers.containers import Residual, Sequential


def outcome(call):
    """What a call does: ("ok", result) or (exception type, message)."""
    try:
        return "ok", call()
    except Exception as err:  # every kind: the fast path must not change which
        return type(err), str(err)


def same_outcome(fast, detailed, *args):
    """``fast(*args)`` does what ``detailed(*args)`` does."""
    got, want = outcome(lambda: fast(*args)), outcome(lambda: detailed(*args))
    if got[0] == "ok" and want[0] == "ok":
        # the checks hand back their argument (geometry: the pairs)
        assert got[1] is want[1] or got[1] == want[1]
    else:
        assert got == want


class DictFlags:
    """An array whose flags are a dict (Numba device arrays): the fast paths read an attribute
    and must leave it to the detailed checks."""

    def __init__(self, a, writeable=True):
        self.shape, self.dtype, self.size = a.shape, a.dtype, a.size
        self.flags = {"C_CONTIGUOUS": a.flags.c_contiguous, "WRITEABLE": writeable}


class Sub(np.ndarray):
    """An ndarray subclass (type(a) is not np.ndarray)."""


class ListShape:
    """An array-like whose shape is a list."""

    def __init__(self, a):
        self.shape, self.dtype, self.flags = list(a.shape), a.dtype, a.flags


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


BASE = np.arange(6.0).reshape(2, 3)
ARRAYS = {
    "f64": BASE,
    "f32": BASE.astype(np.float32),
    "i64": BASE.astype(np.int64),
    "f64-fortran": np.asfortranarray(BASE),
    "f64-strided": np.arange(12.0).reshape(2, 6)[:, ::2],
    "f64-3d": BASE.reshape(1, 2, 3),
    "f64-0d": np.array(1.0),
    "f64-read-only": read_only(BASE),
    "f64-big-endian": BASE.astype(">f8"),
    "subclass": BASE.view(Sub),
    "dict-flags": DictFlags(BASE),
    "dict-flags-read-only": DictFlags(BASE, writeable=False),
    "list-shape": ListShape(BASE),
    "list": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
    "none": None,
}
SHAPES = [(2, 3), [2, 3], (np.int64(2), 3), (3, 2), (2, 3, 1), ()]
LIKES = [BASE, BASE.astype(np.float32), BASE.T.copy(), np.zeros(6)]


@pytest.mark.parametrize("name", ARRAYS)
def test_dtype_checks_fast_path_agrees(name):
    a = ARRAYS[name]
    same_outcome(
        lambda *args: checks.float_array(*args),
        lambda *args: checks._dtype_in_in_detail(*args, checks.FLOAT_DTYPES),
        *("f", "a", a),
    )
    for dtypes in (checks.FLOAT_DTYPES, (np.dtype(np.int64),), (np.dtype(np.float32),)):
        same_outcome(checks.dtype_in, checks._dtype_in_in_detail, "f", "a", a, dtypes)
    for like in LIKES:
        same_outcome(checks.same_dtype, checks._same_dtype_in_detail, "f", "a", a, "like", like)


@pytest.mark.parametrize("name", ARRAYS)
def test_shape_checks_fast_path_agrees(name):
    a = ARRAYS[name]
    for n in (0, 2, 3):
        same_outcome(checks.ndim, checks._ndim_in_detail, "f", "a", a, n, "(X, Y)")
    for expected in SHAPES:
        same_outcome(checks.shape, checks._shape_in_detail, "f", "a", a, expected, " (why)")
    for output in (False, True):
        same_outcome(checks.contiguous, checks._contiguous_in_detail, "f", "a", a, output)


@pytest.mark.parametrize("name", ARRAYS)
def test_output_check_fast_path_agrees(name):
    a = ARRAYS[name]
    for expected, like, need_contiguous in itertools.product(
        [None, *SHAPES], [None, *LIKES], (True, False)
    ):
        args = ("f", "out", a, expected, "like", like, need_contiguous)
        same_outcome(checks.output, checks._output_in_detail, *args)


PAIRS = [
    (2, 2),
    (1, 3),
    (0, 0),
    (0, 1),
    (-1, 2),
    (2, 0),
    [2, 2],
    (np.int64(2), 2),
    (2.0, 2),
    (True, 1),
    (2, 2, 2),
    (2,),
    (),
    2,
    "22",
    None,
]


def test_geometry_fast_path_agrees():
    for kernel_size, stride, padding, dilation in itertools.product(
        PAIRS, [(1, 1), (2, 2), (0, 1), [1, 1], (1.0, 1)], [(0, 0), (1, 1), (-1, 0)], PAIRS
    ):
        args = ("f", kernel_size, stride, padding, dilation)
        same_outcome(checks.geometry, checks._geometry_in_detail, *args)


def test_geometry_does_not_consume_an_iterator_before_the_detailed_check():
    # a generator is not a tuple: the detailed check sees it whole and accepts it
    assert checks.geometry("f", (2, 2), (v for v in (1, 1)), (0, 0)) == (
        (2, 2),
        (1, 1),
        (0, 0),
        (1, 1),
    )


def test_a_fast_check_failure_still_raises_the_detailed_message():
    with pytest.raises(TypeError, match=r"^f: a must have dtype float32 or float64, got int64$"):
        checks.float_array("f", "a", ARRAYS["i64"])
    with pytest.raises(ValueError, match=r"must have shape \(3, 2\) \(why\), got \(2, 3\)"):
        checks.shape("f", "a", BASE, (3, 2), " (why)")
    with pytest.raises(ValueError, match="out is written in place but is read-only"):
        checks.output("f", "out", read_only(BASE), (2, 3))
    with pytest.raises(TypeError, match=r"kernel_size must be a pair of ints, got \(2\.0, 2\)"):
        checks.geometry("f", (2.0, 2), (1, 1), (0, 0))


IMAGE = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)
POOL_IMAGES = {
    "f64": IMAGE,
    "f32": IMAGE.astype(np.float32),
    "i64": IMAGE.astype(np.int64),
    "3d": IMAGE[0],
    "fortran": np.asfortranarray(IMAGE),
    "small": IMAGE[:, :, :1, :1].copy(),
    "dict-flags": DictFlags(IMAGE),
    "list-shape": ListShape(IMAGE),
    "list": IMAGE.tolist(),
}
POOLED = {
    "f64": np.zeros((2, 3, 2, 2)),
    "f32": np.zeros((2, 3, 2, 2), np.float32),
    "wrong-shape": np.zeros((2, 3, 2, 1)),
    "wrong-batch": np.zeros((1, 3, 2, 2)),
    "fortran": np.asfortranarray(np.zeros((2, 3, 2, 2))),
    "list-shape": ListShape(np.zeros((2, 3, 2, 2))),
    "none": None,
}


@pytest.mark.parametrize("image_name", POOL_IMAGES)
def test_pool_check_fast_path_agrees(image_name):
    image = POOL_IMAGES[image_name]
    for pooled, geometry in itertools.product(
        POOLED.values(), [((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1))]
    ):
        checked = checks.geometry("pool", *geometry)[:3]
        same_outcome(
            lambda *args, g=geometry: pool_kernels._check_pool(*args, *g),
            lambda *args, g=checked: pool_kernels._check_pool_arrays(*args, *g),
            *("pool", "x", image, "out", pooled),
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_vjp_is_numpys_sum(dtype):
    rho = np.random.default_rng(0).normal(size=(64, 120)).astype(dtype)
    out = dense_kernels.bias_vjp(rho, np.empty(120, dtype))
    assert np.array_equal(out, np.sum(rho, axis=0))
    sub = rho.view(Sub)  # not an ndarray itself: np.sum's own path
    assert np.array_equal(dense_kernels.bias_vjp(sub, np.empty(120, dtype)), out)


# --------------------------------------------------------------------------------------------
# the step's walks over the model


def assert_walks_agree(model):
    layers = model._layer_list()
    expected = list(model.named_layers())
    assert [p for p, _ in layers] == [p for p, _ in expected]
    assert all(a is b for (_, a), (_, b) in zip(layers, expected, strict=True))
    params = model._parameter_dict()
    expected = dict(model.named_parameters())
    assert list(params) == list(expected)
    assert all(params[k] is expected[k] for k in expected)
    assert model.parameters().keys() == expected.keys()
    first = next(iter(expected.values()), None)
    assert model.dtype == (None if first is None else first.dtype)


class Scaled(Layer):
    """A leaf with its own parameter lookup (own_parameters overridden)."""

    param_names = ("scale",)

    def __init__(self):
        super().__init__()
        self.scale = np.ones(3)
        self.hidden = np.zeros(2)

    def own_parameters(self):
        return {"scale": self.scale, "hidden": self.hidden}


class Wrapper(Layer):
    """A non-container layer with a child (as LIF wraps its current)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def children(self):
        return [("inner", self.inner)]


class Hiding(Sequential):
    """A container that overrides the public walk."""

    def named_parameters(self):
        for name, value in super().named_parameters():
            if not name.endswith("bias"):
                yield name, value


class OwnWalk(Sequential):
    """A container that overrides the private walk (the fast walk must step aside)."""

    def __init__(self, *layers):
        super().__init__(*layers)
        self.extra = lfp.Dense(1, 1)

    def _named_layers(self, prefix, seen):
        yield from super()._named_layers(prefix, seen)
        yield "extra", self.extra


def nested(rng):
    dense = lfp.Dense(4, 4, rng=rng)
    return Sequential(
        Residual(Sequential(dense, lfp.ReLU(), lfp.Dense(4, 4, rng=rng)), lfp.Dense(4, 4, rng=rng)),
        dense,  # used twice: listed once, under its first name
        Residual(lfp.Identity()),
        Wrapper(lfp.Dense(4, 4, bias=False, rng=rng)),
        Scaled(),
        Sequential(),
        OwnWalk(lfp.ReLU()),  # a child that walks its own way
    )


def test_the_walks_agree_on_every_kind_of_model(rng):
    models = [nested(rng), lfp.Dense(3, 2, rng=rng), lfp.ReLU(), Sequential()]
    models += [Hiding(lfp.Dense(2, 2, rng=rng)), OwnWalk(lfp.Dense(2, 2, rng=rng))]
    for name, shape in [("lenet", (1, 28, 28)), ("resnet-small", (3, 32, 32))]:
        models.append(zoo.build(name, num_classes=10, input_shape=shape, seed=0))
    models.append(zoo.build("snn-cnn", num_classes=10, input_shape=(1, 28, 28), seed=0))
    for model in models:
        assert_walks_agree(model)


def test_the_walks_follow_every_change_of_the_model(rng):
    model = nested(rng)
    assert_walks_agree(model)
    model.layers[4] = lfp.Dense(4, 4, rng=rng)  # a child replaced in place in the list
    assert_walks_agree(model)
    model.layers.append(lfp.Dense(4, 2, rng=rng))  # a child appended
    assert_walks_agree(model)
    model.set_child("0", lfp.Dense(4, 4, rng=rng))
    assert_walks_agree(model)
    model.layers[1].weight = np.ones((4, 4))  # a parameter rebound
    assert_walks_agree(model)
    model.layers[1].bias = None  # a parameter removed
    assert_walks_agree(model)
    model.layers[2].shortcut = lfp.Dense(4, 4, rng=rng)  # a nested child set
    assert_walks_agree(model)
    model.to(np.float32)  # every parameter rebound
    assert_walks_agree(model)
    model.load_state_dict({k: np.zeros_like(v) for k, v in model.state_dict().items()})
    assert_walks_agree(model)
    assert_walks_agree(copy.deepcopy(model))


def test_a_step_after_a_layer_is_replaced_uses_the_new_layer(rng):
    x = rng.normal(size=(5, 4))
    y = rng.integers(0, 2, size=5)
    model = Sequential(lfp.Dense(4, 3, rng=rng), lfp.ReLU(), lfp.Dense(3, 2, rng=rng))
    opt = optim.SGD(model, lr=0.1)
    engine.lfp_step(model, opt, x, y)
    old = model.layers[2]
    model.layers[2] = new = lfp.Dense(3, 2, rng=rng)
    model(x)  # a new pass over the layers the model holds now
    assert (new.uses, old.uses) == (1, 1)  # the old layer keeps its last use: no longer walked
    model.clear_caches()
    assert new.uses == 0
    # the optimizer built before sees that its parameter left the model
    with pytest.raises(ValueError, match="'2.weight' is no longer the array"):
        engine.lfp_step(model, opt, x, y)
    opt = optim.SGD(model, lr=0.1)
    fb = engine.lfp_step(model, opt, x, y)
    assert list(fb.params) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert opt.parameters["2.weight"] is new.weight


def test_sequential_children_names_beyond_the_precomputed_ones():
    model = Sequential(*[lfp.ReLU() for _ in range(150)])
    names = [name for name, _ in model.children()]
    assert names == [str(i) for i in range(150)]
    assert [name for name, _ in Sequential(lfp.ReLU()).children()] == ["0"]


# --------------------------------------------------------------------------------------------
# the backend dispatch


def test_backend_of_numpy_shortcut():
    a = np.zeros(3)
    assert backend_of() is CPU and backend_of(None) is CPU
    assert backend_of(a, None, a) is CPU
    assert backend_of(a.view(Sub), a) is CPU  # an ndarray subclass: the general path
    with pytest.raises(TypeError, match="expected an array of one of the backends"):
        backend_of(a, [1.0])


def test_cpu_allocations_are_numpys():
    f = np.asfortranarray(np.zeros((3, 4)))
    assert CPU.empty_like(f).flags.f_contiguous  # empty_like keeps the layout, as before
    assert CPU.contiguous(f).flags.c_contiguous
    c = np.zeros((3, 4), np.float32)
    assert CPU.contiguous(c) is c and CPU.contiguous(c, dtype=np.float32) is c
    assert CPU.contiguous(c, np.float64).dtype == np.float64
    assert CPU.zeros((2,), np.float32).dtype == np.float32 and CPU.ones((2,), np.int64)[0] == 1
    assert CPU.asarray(3.0).shape == ()  # through the bound contiguous
    # another backend keeps the class's methods (subclasses override them)
    other = Backend("cpu", np, np.ndarray)
    assert other.empty.__func__ is Backend.empty
