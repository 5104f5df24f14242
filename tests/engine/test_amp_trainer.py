"""SOLVER.AMP through SOLOTrainer on the CPU: a bf16 autocast step updates the weights as the
fp32 step does (same gradients to bf16 accuracy)."""
import math

import pytest
import torch
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import AMPTrainer, SimpleTrainer

from conftest import capture_logs, tiny_cfg, write_toy_coco
from solo_d2.engine import SOLOTrainer
from solo_d2.layers import precision
from solo_d2.engine.amp import AutocastTrainer, build_step_trainer


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_amp")
    json_file = write_toy_coco(str(root), num_images=2)
    register_coco_instances("solo_test_amp_trainer", {}, json_file, str(root / "images"))
    return "solo_test_amp_trainer"


def _cfg(toy, tmp_path, amp: bool):
    """One deterministic plain-SGD iteration (no warm-up, decay or momentum: the weight change
    is -lr * gradient), batch 2, no flips; fixed sampler seed."""
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN = (toy,)
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.MAX_ITER = 1
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.MOMENTUM = 0.0
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    cfg.SOLVER.AMP.ENABLED = amp
    cfg.INPUT.RANDOM_FLIP = "none"
    cfg.INPUT.RESIZE_BACKEND = "pil"
    cfg.SEED = 3
    cfg.OUTPUT_DIR = str(tmp_path)
    return cfg


def _weight_change(cfg):
    """Train one iteration from the seeded init; (trainer, {name: new - old}) and the dtype
    the backbone ran in."""
    torch.manual_seed(0)
    trainer = SOLOTrainer(cfg)
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    seen = {}

    def record(module, inp, out) -> None:
        seen["dtype"] = next(iter(out.values())).dtype

    model.backbone.register_forward_hook(record)
    trainer.train()
    delta = {n: p.detach() - before[n] for n, p in model.named_parameters() if n in before}
    return trainer, delta, seen["dtype"]


def test_bf16_step_through_solo_trainer_updates_weights_like_fp32(toy, tmp_path, monkeypatch,
                                                                   caplog):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)  # "auto" is bf16 on any host
    with capture_logs(caplog, "detectron2"):
        amp_trainer, amp_delta, amp_dtype = _weight_change(_cfg(toy, tmp_path / "amp", True))
    assert "Training under torch.bfloat16 autocast on cpu (SOLVER.AMP)" in caplog.messages
    assert isinstance(amp_trainer._trainer, AutocastTrainer)
    assert amp_trainer._trainer.precision is torch.bfloat16  # "auto" on the CPU
    assert not amp_trainer._trainer.grad_scaler.is_enabled()  # bf16 needs no scaling
    assert amp_dtype == torch.bfloat16
    loss = amp_trainer.storage.history("total_loss").latest()
    assert math.isfinite(loss) and 0 < loss < 1e3
    _, ref_delta, ref_dtype = _weight_change(_cfg(toy, tmp_path / "fp32", False))
    assert ref_dtype == torch.float32
    for name in ("head.conv_cls.weight", "backbone.fpn_output2.weight"):
        a, r = amp_delta[name].flatten(), ref_delta[name].flatten()
        assert r.abs().max() > 0 and a.abs().max() > 0, name  # both updated
        # bf16 convs: the gradient direction of fp32 to within a few percent
        cos = torch.nn.functional.cosine_similarity(a, r, dim=0).item()
        assert cos > 0.98 and (a.norm() / r.norm()).item() == pytest.approx(1.0, abs=0.05), name


def test_step_trainer_by_device_and_precision(toy, tmp_path):
    cfg = _cfg(toy, tmp_path, False)
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert type(build_step_trainer(cfg, model, [], opt)) is SimpleTrainer
    cfg.SOLVER.AMP.ENABLED = True
    cfg.SOLVER.AMP.PRECISION = "float16"
    fp16 = build_step_trainer(cfg, model, [], opt)
    # fp16 on the CPU: autocast with grad scaling (fp16's range is 6e4)
    assert isinstance(fp16, AutocastTrainer) and fp16.grad_scaler.is_enabled()
    assert fp16.precision is torch.float16 and fp16.device_type == "cpu"
    assert not isinstance(fp16, AMPTrainer) or type(fp16) is not AMPTrainer
    cfg.SOLVER.AMP.PRECISION = "fp16"
    with pytest.raises(ValueError, match="SOLVER.AMP.PRECISION is 'fp16'"):
        build_step_trainer(cfg, model, [], opt)
