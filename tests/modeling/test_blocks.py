"""run_tower's recompute option: same outputs and gradients, and the memory it says it saves."""
from typing import Tuple

import pytest
import torch
from detectron2.modeling import build_model
from torch.profiler import ProfilerActivity, profile, record_function

from solo_d2.layers.blocks import ConvNormAct, DeformConv, conv_tower, run_tower

from conftest import tiny_cfg
from test_meta_arch import HEADS, _input


def _tower(dcn_type: str = "", num_convs: int = 4, channels: int = 32) -> torch.nn.Sequential:
    torch.manual_seed(0)
    tower = conv_tower(8, channels, num_convs, "GN", dcn_type=dcn_type, dcn_layers=[1, 3])
    for m in tower.modules():  # non-trivial norm affine params and DCN offsets
        if isinstance(m, torch.nn.GroupNorm):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.5, 0.5)
        if isinstance(m, DeformConv):
            torch.nn.init.normal_(m.conv_offset.weight, std=0.05)
    return tower.double()


def _run(tower, x, recompute):
    for p in tower.parameters():
        p.grad = None
    x = x.detach().clone().requires_grad_(True)
    y = run_tower(tower, x, recompute)
    # a loss that weighs every output element differently
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    return y.detach(), x.grad, [p.grad.clone() for p in tower.parameters()]


@pytest.mark.parametrize("dcn_type", ["", "DCN", "DCNv2"])
def test_recompute_gives_the_same_outputs_and_gradients(dcn_type):
    tower = _tower(dcn_type)
    assert sum(isinstance(m, DeformConv) for m in tower) == (2 if dcn_type else 0)
    assert all(isinstance(m, ConvNormAct) for m in tower if not isinstance(m, DeformConv))
    x = torch.randn(2, 8, 20, 24, dtype=torch.float64)
    y0, gx0, gp0 = _run(tower, x, recompute=False)
    y1, gx1, gp1 = _run(tower, x, recompute=True)
    assert torch.equal(y0, y1)  # forward runs the same ops in the same order
    torch.testing.assert_close(gx1, gx0, rtol=1e-12, atol=1e-12)
    assert len(gp0) == len(gp1) == len(list(tower.parameters()))
    for a, b in zip(gp1, gp0):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _memory_profile(tower, x, recompute) -> Tuple[float, float]:
    """(bytes the forward allocated and did not free, peak bytes allocated over forward +
    backward), from the profiler's allocation records: an account independent of the code."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with record_function("forward"):
            y = run_tower(tower, x, recompute)
        y.sum().backward()
        del y
    events = prof.events()
    forward = next(e for e in events if e.name == "forward")
    held = sum(e.cpu_memory_usage for e in events
               if e.cpu_parent is None and e.time_range.start >= forward.time_range.start
               and e.time_range.end <= forward.time_range.end)
    running = peak = 0
    for _, nbytes in sorted((e.time_range.start, e.self_cpu_memory_usage) for e in events):
        running += nbytes
        peak = max(peak, running)
    return held, peak


def test_recompute_keeps_one_activation_per_layer_instead_of_two():
    layers, channels, hw = 7, 32, 128
    tower = _tower(num_convs=layers, channels=channels).float()
    x = torch.randn(1, 8, hw, hw, requires_grad=True)
    activation = channels * hw * hw * 4  # one (1, 32, 128, 128) fp32 tensor
    held0, peak0 = (v / activation for v in _memory_profile(tower, x, recompute=False))
    held1, peak1 = (v / activation for v in _memory_profile(tower, x, recompute=True))
    # After forward, default: each layer's conv output (the norm's input) and its in-place
    # norm + ReLU output (the next conv's input); recompute: the conv outputs, plus the last
    # norm + ReLU output.
    assert held0 == pytest.approx(2 * layers, abs=0.05)
    assert held1 == pytest.approx(layers + 1, abs=0.05)
    # Backward recomputes one segment at a time: its peak is the held tensors plus a gradient
    # and one or two recomputed ones, not the whole tower again (recomputing the tower as one
    # checkpoint would bring the peak back to the default's).
    assert peak0 == pytest.approx(2 * layers + 1, abs=0.1)
    assert peak1 <= layers + 3 + 0.1


def test_without_autograd_recompute_is_a_plain_forward():
    tower = _tower()
    x = torch.randn(1, 8, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(run_tower(tower, x, True), tower(x))


def test_batchnorm_running_stats_are_updated_once():
    torch.manual_seed(0)
    towers = [conv_tower(8, 32, 3, "BN").train() for _ in range(2)]
    towers[1].load_state_dict(towers[0].state_dict())
    x = torch.randn(2, 8, 16, 16)
    for tower, recompute in zip(towers, (False, True)):
        run_tower(tower, x, recompute).sum().backward()
    for a, b in zip(towers[0].modules(), towers[1].modules()):
        if isinstance(a, torch.nn.BatchNorm2d):
            assert a.num_batches_tracked.item() == b.num_batches_tracked.item() == 1
            torch.testing.assert_close(b.running_mean, a.running_mean, rtol=0, atol=0)
            torch.testing.assert_close(b.running_var, a.running_var, rtol=0, atol=0)


@pytest.mark.parametrize("head", HEADS)
def test_recompute_option_gives_the_same_losses_and_gradients_in_training(head):
    grads = []
    for recompute in (False, True):
        cfg = tiny_cfg(head)
        cfg.MODEL.SOLO.RECOMPUTE_NORM_ACT = recompute
        torch.manual_seed(0)
        model = build_model(cfg).train().double()
        assert model.head.recompute_norm_act is recompute
        torch.manual_seed(1)
        batch = [_input(128, 160), _input(96, 128, boxes=((5, 5, 90, 60),), classes=(1,))]
        for d in batch:
            d["image"] = d["image"].double()
        losses = model(batch)
        sum(losses.values()).backward()
        grads.append((
            {k: v.item() for k, v in losses.items()},
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        ))
    (loss0, g0), (loss1, g1) = grads
    assert loss0 == pytest.approx(loss1, rel=1e-12)
    assert g0.keys() == g1.keys() and any("mask_convs" in n for n in g0)
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=1e-9, atol=1e-12, msg=n)
