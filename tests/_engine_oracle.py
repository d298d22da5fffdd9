"""Helpers of the engine's oracle tests: one engine step checked against the float64 NumPy
reference (_engine_reference), and the engine's own active sets to hand to the reference."""

from __future__ import annotations

import numpy as np
from _engine_reference import adam_first_step, reference_step, toy_data

from slide_engine.engine import SlideConfig, SlideNetwork

RTOL = 1e-5
LR, B1, B2, EPS = 1e-2, 0.9, 0.999, 1e-8


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30))


def neuron_major(net: SlideNetwork) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ws = [layer.w.astype(np.float64) for layer in net.layers]
    ws[0] = ws[0].T.copy()
    return ws, [layer.b.astype(np.float64) for layer in net.layers]


def make_net(hidden, output, adam="lazy", data=None, threads=1, accumulate="hogwild"):
    cfg = SlideConfig(hidden=hidden, output=output, lr=LR, init_std=0.3, adam=adam,
                      accumulate=accumulate)
    net = SlideNetwork(cfg, seed=3, threads=threads)
    net.prepare(data if data is not None else toy_data())
    return net


def active_sets(net: SlideNetwork, batch: int):
    # the active sets the engine used in its last batch (None for dense layers)
    buf = net._buffers
    return [
        [buf.ids[li][i, : buf.cnt[li][i]].copy() for i in range(batch)]
        if li in net._samplers else None
        for li in range(len(net.layers))
    ]


def check_step(net: SlideNetwork, rows: np.ndarray, use_active: bool) -> None:
    data = net._train
    ws, bs = neuron_major(net)
    loss = net.train_batch(rows)
    active = active_sets(net, len(rows)) if use_active else None
    ref_loss, gw, gb, touched, deltas = reference_step(ws, bs, data, rows, active, True)
    assert rel(loss, ref_loss) <= RTOL
    buf, last = net._buffers, len(net.layers) - 1
    for li in range(last + 1):  # every layer's delta (the output's is left in its values)
        got = buf.val[li] if li == last else buf.delta[li]
        for i in range(len(rows)):
            ids = buf.ids[li][i, : buf.cnt[li][i]]
            assert rel(got[i, : len(ids)], deltas[li][i, ids]) <= RTOL, f"layer {li} delta"
    for li, layer in enumerate(net.layers):
        g_net = layer.m / (1 - B1)  # Adam step 1 from zero moments: m = (1 - beta1) g
        g_ref = gw[li].T if li == 0 else gw[li]
        assert rel(g_net, g_ref) <= RTOL, f"layer {li} weight gradient"
        assert rel(layer.mb / (1 - B1), gb[li]) <= RTOL, f"layer {li} bias gradient"
        w_before = ws[li].T if li == 0 else ws[li]
        w_ref = adam_first_step(w_before, g_ref, touched[li], LR, B1, B2, EPS)
        assert rel(layer.w, w_ref) <= RTOL, f"layer {li} weights after Adam"
        bias_rows = np.ones_like(touched[li][:1].repeat(len(bs[li]))) if li == 0 else touched[li]
        b_ref = adam_first_step(bs[li], gb[li], bias_rows, LR, B1, B2, EPS)
        assert rel(layer.b, b_ref) <= RTOL, f"layer {li} bias after Adam"
