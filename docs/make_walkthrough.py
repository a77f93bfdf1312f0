"""Generate docs/walkthrough.md: one LFP step of a 2-3-2 ReLU network with every number shown.

    python docs/make_walkthrough.py            # (re)write docs/walkthrough.md
    python docs/make_walkthrough.py --check    # exit 1 if docs/walkthrough.md is stale

Every number comes from lfp_ref itself (:func:`lfp_ref.trace`, :func:`lfp_ref.lfp_step`,
:func:`lfp_ref.gd_step`) and is checked against the plain-NumPy formulas of the numerical contract
(docs/numerical-contract.md) before the file is written, so the walkthrough cannot drift from the
code; the page's Python snippet is run too, so a reader can paste it as it is. The weights and the
input are fixed decimals and every number is printed with a fixed format, so the output is the same
on every run and platform (tests/test_walkthrough.py regenerates it and compares).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import numpy as np

import lfp_ref as lfp

OUTPUT = Path(__file__).resolve().parent / "walkthrough.md"
CONTRACT = "numerical-contract.md"  # docs/numerical-contract.md, linked relative to this page

# The network: Dense(2, 3) -> ReLU -> Dense(3, 2), torch layout (weight (out, in)).
WEIGHTS = {
    "0.weight": [[0.5, -0.4], [0.3, 0.8], [-0.6, 0.2]],
    "0.bias": [0.1, -0.2, 0.05],
    "2.weight": [[0.7, -0.5, 0.4], [0.0, 0.9, -0.3]],
    "2.bias": [0.1, -0.1],
}
X = [[1.0, 0.5]]  # one sample, so that every sum over the batch is a single term
Y = [0]
EPS = 1e-6
LR = 0.5


# -- fixed formatting ------------------------------------------------------------------------


def num(value, digits=4):
    """``+0.1234``; -0.0 prints as +0.0000."""
    value = float(value)
    return f"{value + 0.0:+.{digits}f}" if round(value, digits) != 0 else f"{0.0:+.{digits}f}"


def sci(value):
    """``+3.9e-07`` for the small numbers (stabiliser shares, identity residues); exact zeros
    print as 0."""
    value = float(value)
    return "0" if value == 0 else f"{value:+.1e}"


def vec(values, digits=4):
    return "[" + ", ".join(num(v, digits) for v in np.ravel(values)) + "]"


def matrix_block(name, values):
    """A matrix as rows in a code block, one row per output unit."""
    values = np.atleast_2d(values)
    rows = [f"{name} = [" + vec(values[0])]
    rows += [" " * (len(name) + 4) + vec(row) for row in values[1:]]
    rows[-1] += "]"
    return "```\n" + "\n".join(rows) + "\n```"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- the computation ---------------------------------------------------------------------------


def build_model():
    model = lfp.Sequential(lfp.Dense(2, 3), lfp.ReLU(), lfp.Dense(3, 2))
    model.load_state_dict({k: np.array(v, dtype=np.float64) for k, v in WEIGHTS.items()})
    return model


def sgn0(z):
    return np.where(z >= 0, 1.0, -1.0)


def check(name, actual, expected):
    """The walkthrough states ``expected`` (the contract's formula) and prints ``actual`` (lfp_ref's
    number): they must agree to float64 rounding."""
    if not np.allclose(actual, expected, rtol=1e-12, atol=1e-15):
        raise AssertionError(f"{name}: lfp_ref gives {actual}, the formula {expected}")


def compute():
    """Every number of the walkthrough, from lfp_ref, each checked against its formula."""
    x, y = np.array(X), np.array(Y)
    model = build_model()
    t = lfp.trace(model, x, y, reward="softmax_loss", eps=EPS)
    first, relu, last = t.records
    W1, b1 = np.array(WEIGHTS["0.weight"]), np.array(WEIGHTS["0.bias"])
    W2, b2 = np.array(WEIGHTS["2.weight"]), np.array(WEIGHTS["2.bias"])
    onehot = np.eye(2)[y]

    # forward
    z1 = x @ W1.T + b1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ W2.T + b2
    p = np.exp(z2) / np.exp(z2).sum(axis=1, keepdims=True)
    loss = -np.log(p[0, y[0]])
    check("z1", first.output, z1)
    check("a1", relu.output, a1)
    check("z2", last.output, z2)
    check("loss", t.loss, loss)

    # reward and the LFP pass, top layer first
    r = z2 * (onehot - p)
    rho2 = r / (z2 + EPS * sgn0(z2))
    messages2 = a1[0][None, :] * W2 * rho2[0][:, None]  # (out j, in i): a1_i w_ji rho2_j
    R_a1 = messages2.sum(axis=0)[None, :]
    F_W2 = np.sign(W2) * messages2
    F_b2 = np.abs(b2) * rho2[0]
    rho1 = R_a1 / (z1 + EPS * sgn0(z1))
    messages1 = x[0][None, :] * W1 * rho1[0][:, None]
    R_x = messages1.sum(axis=0)[None, :]
    F_W1 = np.sign(W1) * messages1
    F_b1 = np.abs(b1) * rho1[0]
    check("r", t.reward, r)
    check("rho2", last.rho, rho2)
    check("R_a1", last.reward_leaving, R_a1)
    check("F_W2", last.feedback["2.weight"], F_W2)
    check("F_b2", last.feedback["2.bias"], F_b2)
    check("messages2", last.reward_through("2.weight"), messages2)
    check("R_z1", relu.reward_leaving, R_a1)
    check("rho1", first.rho, rho1)
    check("R_x", first.reward_leaving, R_x)
    check("F_W1", first.feedback["0.weight"], F_W1)
    check("F_b1", first.feedback["0.bias"], F_b1)

    # backprop of the same loss
    g_z2 = p - onehot
    g_W2, g_b2 = g_z2.T @ a1, g_z2[0]
    g_a1 = g_z2 @ W2
    g_z1 = g_a1 * (z1 > 0)
    g_W1, g_b1 = g_z1.T @ x, g_z1[0]
    check("dL/dz2", last.grad_arriving, g_z2)
    check("dL/dz1", first.grad_arriving, g_z1)
    for name, value in (("2.weight", g_W2), ("2.bias", g_b2), ("0.weight", g_W1), ("0.bias", g_b1)):
        check(f"dL/d{name}", t.gradients[name], value)

    # one SGD step each way, from the same weights
    lfp_model, gd_model = build_model(), build_model()
    lfp.lfp_step(lfp_model, lfp.optim.SGD(lfp_model, lr=LR), x, y, eps=EPS)
    lfp.gd_step(gd_model, lfp.optim.SGD(gd_model, lr=LR), x, y, reduction="sum")
    after = {}
    for method, stepped in (("lfp", lfp_model), ("gd", gd_model)):
        logits = stepped(x)
        after[method] = (stepped.state_dict(), logits, lfp.losses.cross_entropy(logits, y)[0])
    for name, w in WEIGHTS.items():
        check(f"LFP step {name}", after["lfp"][0][name], np.array(w) + LR * t.feedback[name])
        check(f"GD step {name}", after["gd"][0][name], np.array(w) - LR * t.gradients[name])

    # the story below relies on these facts about the chosen numbers
    assert list(z1[0] > 0) == [True, True, False], "hidden unit 2 must be the inactive one"
    assert z2[0, 1] > z2[0, 0] and y[0] == 0, "the network must start out wrong"
    assert W2[1, 0] == 0, "weight 2.weight[1, 0] must be the zero weight"
    assert after["lfp"][2] < loss and after["gd"][2] < loss, "both steps must lower the loss"
    return dict(
        t=t, x=x, y=y, z1=z1, a1=a1, z2=z2, p=p, loss=loss, r=r, rho2=rho2, rho1=rho1,
        messages2=messages2, messages1=messages1, R_a1=R_a1, R_x=R_x, g_z2=g_z2, g_z1=g_z1,
        g_a1=g_a1, after=after, W1=W1, b1=b1, W2=W2, b2=b2,
    )  # fmt: skip


# -- the snippet a reader can paste ------------------------------------------------------------


def snippet():
    """The walkthrough's Python snippet: self-contained (every name it uses is defined in it), with
    the weights and the data of this script, and the default ``eps`` (which is ``EPS``)."""
    names = {"W1": "0.weight", "b1": "0.bias", "W2": "2.weight", "b2": "2.bias"}
    lines = ["import numpy as np", "import lfp_ref as lfp", ""]
    lines += [f"{short} = {WEIGHTS[name]!r}" for short, name in names.items()]
    lines += [
        f"x, y = np.array({X!r}), np.array({Y!r})",
        "",
        "model = lfp.Sequential(lfp.Dense(2, 3), lfp.ReLU(), lfp.Dense(3, 2))",
        'model.load_state_dict({"0.weight": np.array(W1), "0.bias": np.array(b1),',
        '                       "2.weight": np.array(W2), "2.bias": np.array(b2)})',
        't = lfp.trace(model, x, y, reward="softmax_loss")',
        "print(t.to_table())",
    ]
    return "\n".join(lines) + "\n"


def check_snippet(code, expected):
    """Run ``code`` in a fresh namespace (its output captured) and check that its trace ``t`` has
    the feedback of ``expected``, the trace every number of the page comes from."""
    namespace = {"__name__": "walkthrough_snippet"}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(code, "<walkthrough snippet>", "exec"), namespace)
    if not printed.getvalue().strip():
        raise AssertionError("the walkthrough snippet printed nothing")
    for name, value in expected.feedback.items():
        check(f"snippet feedback {name}", namespace["t"].feedback[name], value)


# -- the document ------------------------------------------------------------------------------


def forward_lines(c):
    x, W1, b1, W2, b2 = c["x"][0], c["W1"], c["b1"], c["W2"], c["b2"]
    lines = []
    for j in range(3):
        terms = " + ".join(f"({num(W1[j, i], 1)})·({num(x[i], 1)})" for i in range(2))
        lines.append(f"z1[{j}] = {terms} + ({num(b1[j], 2)}) = {num(c['z1'][0, j])}")
    lines.append("a1    = relu(z1) = " + vec(c["a1"]))
    for j in range(2):
        terms = " + ".join(f"({num(W2[j, i], 1)})·({num(c['a1'][0, i])})" for i in range(3))
        lines.append(f"z2[{j}] = {terms} + ({num(b2[j], 1)}) = {num(c['z2'][0, j])}")
    return "```\n" + "\n".join(lines) + "\n```"


def message_table(messages, inputs, weights, rho, input_name, bias, out_name):
    """Per-connection messages R_{i<-j} = input_i * w_ji * rho_j, and the bias's."""
    header = ["to unit j", "rho_j"]
    header += [f"from {input_name}[{i}] = {num(v)}" for i, v in enumerate(inputs)]
    header += ["bias b_j · rho_j"]
    rows = []
    for j in range(messages.shape[0]):
        row = [f"{out_name}[{j}]", num(rho[j])]
        for i in range(messages.shape[1]):
            product = f"{num(inputs[i])}·({num(weights[j, i], 1)})·({num(rho[j])})"
            row.append(f"{product} = {num(messages[j, i])}")
        row.append(f"({num(bias[j], 2)})·({num(rho[j])}) = {num(bias[j] * rho[j])}")
        rows.append(row)
    totals = ["**sum over j = R**", ""]
    totals += [f"**{num(messages[:, i].sum())}**" for i in range(messages.shape[1])]
    totals.append(f"**{num((bias * rho).sum())}** (bias share)")
    rows.append(totals)
    return table(header, rows)


def conservation_line(rec):
    return (
        f"sum r = {num(rec.sum_arriving)}  =  sum R (to the input) {num(rec.sum_leaving)}"
        f"  +  bias share {num(rec.bias_share)}  +  stabiliser share {sci(rec.stabilizer_share)}"
        f"   (left over: {sci(rec.other) if abs(rec.other) > 1e-14 else 'below 1e-14'})"
    )


def render():
    """The walkthrough as a Markdown string."""
    c = compute()
    t = c["t"]
    code = snippet()
    check_snippet(code, t)
    first, _, last = t.records
    lfp_state, lfp_logits, lfp_loss = c["after"]["lfp"]
    gd_state, gd_logits, gd_loss = c["after"]["gd"]
    out = []
    add = out.append

    add("# One LFP step by hand: a 2-3-2 ReLU network, every number shown\n")
    add(
        "<!-- Generated by docs/make_walkthrough.py; do not edit by hand. Regenerate with\n"
        "     `python docs/make_walkthrough.py`. tests/test_walkthrough.py fails when this file\n"
        "     and the script disagree. -->\n"
    )
    add(
        "This page follows one step of Layer-wise Feedback Propagation (LFP) through a network\n"
        "small enough to check with a pocket calculator, from the equations of lfp_ref's\n"
        f"[numerical contract]({CONTRACT}) (sections 2-5) to the code that computes them, and\n"
        "compares it with a gradient-descent step on the same network. Every number is computed\n"
        "by lfp_ref (`lfp_ref.trace`, `lfp_ref.lfp_step`, `lfp_ref.gd_step`) and checked against\n"
        "the formula next to it when the page is generated; numbers are rounded to 4 decimals.\n"
    )

    add("## 0. The network and the data\n")
    add(
        "`Dense(2, 3) -> ReLU -> Dense(3, 2)`, weights in torch's layout (one row per output\n"
        "unit), one input `x` with label `y = 0`, the default stabiliser `eps = 1e-6`, and plain\n"
        f"SGD with learning rate `lr = {LR}`:\n"
    )
    add(matrix_block("W1", c["W1"]) + "\n")
    add(f"`b1 = {vec(c['b1'])}`\n")
    add(matrix_block("W2", c["W2"]) + "\n")
    add(f"`b2 = {vec(c['b2'])}`, `x = {vec(c['x'])}`, `y = {c['y'][0]}`\n")
    add(
        "Note the zero weight `W2[1, 0]`: it will show that LFP never moves a weight that is\n"
        "exactly zero.\n"
    )
    add("The same in code (it runs as it is; the trace `t` holds every number below):\n")
    add("```python\n" + code + "```\n")

    add("## 1. Forward\n")
    add("`z1 = x W1^T + b1`, `a1 = relu(z1)`, `z2 = a1 W2^T + b2` (`Dense.forward`):\n")
    add(forward_lines(c) + "\n")
    add(
        f"Hidden unit 2 is inactive (`z1[2] = {num(c['z1'][0, 2])} < 0`, so `a1[2] = 0`). The\n"
        f"softmax gives `p = {vec(c['p'])}`: the network prefers class 1, but the label is 0;\n"
        f"the cross-entropy is `L = -log p[0] = {num(c['loss'])}`.\n"
    )

    add("## 2. The reward\n")
    add(
        'LFP starts from a reward at the output, positive for "more of this". The paper\'s\n'
        f"default, `softmax_loss` ([contract section 3]({CONTRACT}#3-rewards),\n"
        "`lfp_ref.rewards.softmax_loss`), is "
        "`r = z2 * (Y - p)` with `Y` the one-hot label:\n"
    )
    add(
        f"```\nY - p = {vec(np.eye(2)[c['y']] - c['p'])}\n"
        f"r     = z2 * (Y - p) = {vec(c['r'])}\n```\n"
    )
    add(
        "The logit of the label gets a positive reward, the wrong logit a negative one. In\n"
        "total the network receives `sum r = " + num(c["r"].sum()) + "`.\n"
    )

    add("## 3. Backward, layer by layer (LFP-epsilon)\n")
    add(
        "Each linear layer `z = x W^T + b` turns the reward `r` at its output into (contract\n"
        f"section 2, [the LFP-epsilon rule]({CONTRACT}#2-the-lfp-epsilon-rule))\n\n"
        "- the normalised reward `rho = r / stab(z)`, `stab(z) = z + eps * sgn0(z)` "
        "(`kernels/cpu/elementwise.py: stabilized_ratio`, the one stabiliser);\n"
        "- connection messages `R_{i<-j} = x_i * w_ji * rho_j`: the share of `r_j` that flowed\n"
        "  through weight `w_ji` from input `i`;\n"
        "- the reward handed to its input, `R_i = sum_j R_{i<-j}`, i.e. `R_x = x * (rho W)`;\n"
        "- the parameter feedback `F_w_ji = sign(w_ji) * R_{i<-j}` (summed over the batch),\n"
        "  i.e. `F_W = |W| * (rho^T x)` and `F_b = |b| * sum_B rho`.\n\n"
        "In code this is `lfp_ref.rules.Epsilon.propagate`: `rho` from the stabiliser, then the\n"
        "layer's vector-Jacobian product `Dense.vjp(rho)` = `(rho W, {weight: rho^T x, bias:\n"
        "sum_B rho})`, multiplied by `x` and by `|theta|` respectively.\n"
    )
    add("### Layer `2` (Dense 3 -> 2), the output layer\n")
    add(
        f"```\nstab(z2) = {vec(c['z2'] + EPS * sgn0(c['z2']), 7)}\n"
        f"rho2     = r / stab(z2) = {vec(c['rho2'])}\n```\n"
    )
    add(
        message_table(c["messages2"], c["a1"][0], c["W2"], c["rho2"][0], "a1", c["b2"], "z2") + "\n"
    )
    add(
        f"So the reward handed down is `R_a1 = {vec(c['R_a1'])}`. The inactive unit 2 gets\n"
        "nothing: every message to it is multiplied by `a1[2] = 0`. The feedback is each\n"
        "message signed by its weight:\n"
    )
    add(matrix_block("F_W2", last.feedback["2.weight"]) + "\n")
    add(f"`F_b2 = |b2| * rho2 = {vec(last.feedback['2.bias'])}`\n")
    through, weight = c["messages2"][0, 1], c["W2"][0, 1]
    assert through < 0 and weight < 0, "W2[0, 1] must be negative and carry negative reward"
    add(
        "`F_W2[1, 0]` is zero although reward reached that connection's ends: the weight is\n"
        "zero, so no reward flowed through it. The sign of `F` is the direction in which `w`\n"
        "moves (section 4): positive reward flowing through a weight grows `|w|`, negative\n"
        f"reward shrinks it. `W2[0, 1] = {num(weight, 1)}` carried `{num(through)}`, so\n"
        f"`F_W2[0, 1] = sign(w) * ({num(through)}) = {num(np.sign(weight) * through)}` moves it\n"
        "towards zero.\n"
    )
    add(
        "Where did the reward go? Summed over the layer (conservation, [contract section\n"
        f"5.5]({CONTRACT}#55-properties-the-tests-check)):\n"
        "`sum r = sum R + sum rho * b + sum rho * eps * sgn0(z)`:\n"
    )
    add("```\n" + conservation_line(last) + "\n```\n")
    add("### Layer `1` (ReLU)\n")
    add(
        "Activations use the identity rule (contract section 2.3, [layers that consult no\n"
        f"rule]({CONTRACT}#23-layers-that-consult-no-rule)): `R_z1 = R_a1 = "
        f"{vec(c['R_a1'])}`.\n"
        "No derivative is needed: the inactive unit already received zero reward because its\n"
        "output was zero.\n"
    )
    add("### Layer `0` (Dense 2 -> 3), the input layer\n")
    add(
        f"```\nstab(z1) = {vec(c['z1'] + EPS * sgn0(c['z1']), 7)}\n"
        f"rho1     = R_z1 / stab(z1) = {vec(c['rho1'])}\n```\n"
    )
    add(message_table(c["messages1"], c["x"][0], c["W1"], c["rho1"][0], "x", c["b1"], "z1") + "\n")
    add(matrix_block("F_W1", first.feedback["0.weight"]) + "\n")
    add(f"`F_b1 = |b1| * rho1 = {vec(first.feedback['0.bias'])}`, and `R_x = {vec(c['R_x'])}`.\n")
    add("```\n" + conservation_line(first) + "\n```\n")
    add(
        "The whole row of the inactive unit 2 is zero: weights that fed a silent unit get no\n"
        "feedback (update sparsity).\n"
    )

    add("## 4. The update\n")
    add(
        "The optimizer follows torch.optim and descends, so LFP hands it `g = -F`\n"
        "(`lfp_ref.engine.GRADIENT_PER_FEEDBACK`, the one place that decides the sign); plain SGD\n"
        f"then does `w <- w - lr * g = w + lr * F` with `lr = {LR}`:\n"
    )
    rows = []
    for name in WEIGHTS:
        w = np.ravel(WEIGHTS[name])
        f = np.ravel(t.feedback[name])
        new = np.ravel(lfp_state[name])
        for k in range(w.size):
            rows.append([f"`{name}`[{k}]", num(w[k]), num(f[k]), num(LR * f[k]), num(new[k])])
    add(table(["parameter (flat index)", "w", "F", "lr * F", "w after"], rows) + "\n")
    add(
        f"After the step the logits are `{vec(lfp_logits)}` and the loss is `{num(lfp_loss)}`\n"
        f"(before: `{num(c['loss'])}`).\n"
    )

    add("## 5. The same step with gradient descent\n")
    add(
        "Backprop on the cross-entropy (`lfp_ref.gradients`, the layers' `backward`), from the\n"
        "top:\n"
    )
    add(
        "```\n"
        f"dL/dz2 = p - Y            = {vec(c['g_z2'])}\n"
        f"dL/da1 = dL/dz2 W2        = {vec(c['g_a1'])}\n"
        f"dL/dz1 = dL/da1 * [z1>0]  = {vec(c['g_z1'])}\n"
        "```\n"
    )
    add(
        "Compare with the normalised rewards of section 3:\n\n"
        "```\n"
        f"rho2 = {vec(c['rho2'])}     -dL/dz2 = {vec(-c['g_z2'])}\n"
        f"rho1 = {vec(c['rho1'])}     -dL/dz1 = {vec(-c['g_z1'])}\n"
        "```\n"
    )
    add(
        "They agree up to the stabiliser. At the top, `r / z2 = Y - p = -dL/dz2`. One layer\n"
        "down, `rho1 = R_z1 / z1 = (a1 / z1) * (rho2 W2)`, and for a ReLU `a1 / z1` is exactly\n"
        "`relu'(z1)` (1 where active, 0 where not), so `rho1 = -dL/dz1` again; by induction\n"
        "this holds in every layer of a ReLU network.\n"
    )
    rows = []
    for name in WEIGHTS:
        w = np.ravel(WEIGHTS[name])
        gd_new = np.ravel(gd_state[name])
        lfp_delta = np.ravel(lfp_state[name]) - w
        for k in range(w.size):
            rows.append(
                [
                    f"`{name}`[{k}]",
                    num(w[k]),
                    num(np.ravel(t.gradients[name])[k]),
                    num(gd_new[k] - w[k]),
                    num(lfp_delta[k]),
                ]
            )
    add(table(["parameter", "w", "dL/dw", "GD: -lr * dL/dw", "LFP: lr * F"], rows) + "\n")
    add(
        f"After the GD step the logits are `{vec(gd_logits)}` and the loss is `{num(gd_loss)}`\n"
        f"(LFP: `{num(lfp_loss)}`, before: `{num(c['loss'])}`). Every weight that LFP moves, GD\n"
        "moves in the same direction; only the step sizes differ (and the zero weight, which\n"
        "only GD moves). Here every `|w|` is below 1, so every LFP step is the smaller one.\n"
    )

    add("## 6. The implicit weight scaling\n")
    add(
        "Put the two together: `F_W = |W| * (rho^T x)` and `rho = -dL/dz`, so\n\n"
        "    F = -|w| * dL/dw      for every parameter (contract section 5.5)\n\n"
        "with `L` the cross-entropy summed over the batch, exact as `eps -> 0`. With\n"
        "`eps = 1e-6` the difference is of order `eps / |z|`:\n"
    )
    rows = []
    for name in WEIGHTS:
        w = np.ravel(WEIGHTS[name])
        g = np.ravel(t.gradients[name])
        f = np.ravel(t.feedback[name])
        for k in range(w.size):
            scaled = -abs(w[k]) * g[k]
            rows.append(
                [f"`{name}`[{k}]", num(w[k]), num(g[k]), num(scaled), num(f[k]), sci(f[k] - scaled)]
            )
    add(table(["parameter", "w", "dL/dw", "-abs(w) * dL/dw", "F", "F + abs(w) dL/dw"], rows) + "\n")
    add(
        "So one LFP-SGD step is a gradient-descent step with a learning rate of `lr * |w|` for\n"
        "each weight (a preconditioner `P = diag(|theta|)`):\n\n"
        "- large weights move more, small ones less, in proportion to their size (compare the\n"
        "  two update columns of section 5: their ratio is `|w|`);\n"
        "- a weight that is exactly zero never moves (`2.weight[1, 0]`, flat index 3): GD would\n"
        "  have moved it, LFP cannot regrow it;\n"
        "- weights into an inactive ReLU unit get neither gradient nor feedback, as in GD;\n"
        "- for small enough `lr`, the loss decreases, as it does here.\n\n"
        "For activations other than ReLU the identity changes (secant slope, [contract section\n"
        f"5.5]({CONTRACT}#55-properties-the-tests-check)):\n"
        "`a / z` replaces the derivative, so LFP is no longer a rescaled gradient.\n"
    )

    add("## 7. Try it\n")
    add(
        "- `lfp-ref explain` prints this kind of trace for a freshly initialised 2-3-2 network on\n"
        "  a batch of 8 points and draws it (`--model toy`, `--model lenet` for larger ones).\n"
        "- `examples/` has three short scripts: LFP training on a toy problem, a non-default rule\n"
        "  and reward, and a cross-check of a torch model against lfprop.\n"
        "- `print(t.to_table())` on the trace of section 0 shows this step per layer: the reward\n"
        "  sums, the bias and stabiliser shares, `max|F|` and the size of `F + |w| dL/dw`.\n"
    )
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write")
    parser.add_argument(
        "--check", action="store_true", help="compare with the file instead of writing it"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output} is stale; regenerate it with `python docs/make_walkthrough.py`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
