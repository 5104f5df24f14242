"""build_solo_optimizer: SOLVER.OPTIMIZER (SGD / AdamW) and CLIP_TYPE "full_model" (one
gradient norm over all parameters)."""
import pytest
import torch
from detectron2.config import get_cfg

from solo_d2 import add_solo_config
from solo_d2.solver import build_solo_optimizer


def _cfg(clip_type):
    cfg = get_cfg()
    add_solo_config(cfg)
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.MOMENTUM = 0.0
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = clip_type
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 5.0
    cfg.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0
    return cfg


def _step(clip_type):
    model = torch.nn.Linear(2, 1, bias=True)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    opt = build_solo_optimizer(_cfg(clip_type), model)
    model.weight.grad = torch.tensor([[3.0, 4.0]])  # norm 5
    model.bias.grad = torch.tensor([12.0])  # norm 12; together 13
    opt.step()
    return -model.weight.detach().flatten(), -model.bias.detach()  # lr 1: update = -grad


def test_full_model_clipping_scales_all_gradients_by_one_factor():
    w, b = _step("full_model")
    scale = 5.0 / 13.0
    assert torch.allclose(w, torch.tensor([3.0, 4.0]) * scale, atol=1e-5)
    assert torch.allclose(b, torch.tensor([12.0]) * scale, atol=1e-5)


def test_per_parameter_norm_clipping_is_left_to_detectron2():
    w, b = _step("norm")
    assert torch.allclose(w, torch.tensor([3.0, 4.0]), atol=1e-5)  # norm 5: untouched
    assert torch.allclose(b, torch.tensor([5.0]), atol=1e-5)  # clipped alone


def _adamw_step(clip_type, enabled=True):
    cfg = _cfg(clip_type)
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = enabled
    model = torch.nn.Linear(2, 1, bias=True)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    opt = build_solo_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.AdamW)
    model.weight.grad = torch.tensor([[3.0, -4.0]])
    model.bias.grad = torch.tensor([12.0])
    opt.step()
    return model.weight.detach().flatten(), model.bias.detach()


@pytest.mark.parametrize("clip_type,enabled", [("full_model", True), ("norm", True), ("norm", False)])
def test_adamw_first_step_moves_each_weight_by_lr_against_its_gradient_sign(clip_type, enabled):
    # Adam's bias-corrected first step is lr * g / (|g| + eps): -sign(g) at lr 1, whatever
    # the clipping scaled g by; weight decay is 0 here.
    w, b = _adamw_step(clip_type, enabled)
    assert torch.allclose(w, torch.tensor([-1.0, 1.0]), atol=1e-5)
    assert torch.allclose(b, torch.tensor([-1.0]), atol=1e-5)


def test_unknown_optimizer_is_a_clear_error():
    cfg = _cfg("norm")
    cfg.SOLVER.OPTIMIZER = "LAMB"
    with pytest.raises(ValueError, match="LAMB.*SGD.*ADAMW"):
        build_solo_optimizer(cfg, torch.nn.Linear(2, 1))


def test_adamw_is_fused_and_steps_as_torchs_per_tensor_loop():
    # The fused kernel is a speed choice only: five steps with weight decay and full-model
    # clipping land where torch's reference loop (foreach=False, fused=False) lands.
    cfg = _cfg("full_model")
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.WEIGHT_DECAY = cfg.SOLVER.WEIGHT_DECAY_NORM = 0.1
    torch.manual_seed(0)
    ours, ref = torch.nn.Linear(8, 3), torch.nn.Linear(8, 3)
    ref.load_state_dict(ours.state_dict())
    start = ours.weight.detach().clone()
    opt = build_solo_optimizer(cfg, ours)
    assert opt.defaults["fused"] is True
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=0.01, weight_decay=0.1, foreach=False,
                                fused=False)
    for _ in range(5):
        grads = [torch.randn_like(p) * 4 for p in ours.parameters()]
        for m, o in ((ours, opt), (ref, ref_opt)):
            for p, g in zip(m.parameters(), grads):
                p.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(list(ref.parameters()), 5.0, 2.0)
        opt.step()
        ref_opt.step()
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6), (p, q)
    assert (ours.weight - start).abs().min() > 1e-3  # every weight moved
