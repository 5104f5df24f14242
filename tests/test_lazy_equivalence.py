"""One model, two front doors: SOLO R50 1x, SOLOv2 R50 1x and panoptic SOLOv2 R50 1x, built
from their yaml config and from their LazyConfig twin, given the same weights and the same inputs, give identical
predictions, losses and gradients; their optimizers have identical parameter groups, set
identical learning rates along the schedule and make identical updates.

Full-size R50 models on 64-96 px images (a few seconds each on a CPU). Settings, mappers and
schedules of every twin are compared in test_lazy_twins.py."""
import pytest
import torch
from detectron2.config import instantiate
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler
from detectron2.structures import BitMasks, Boxes, Instances

import solo_d2
from conftest import make_head_confident
from solo_d2.engine import LazySOLOTrainer, SOLOTrainer
from twins import lazy_lr_scheduler

# iterations of the 1x schedule: warm-up, its end, around both lr steps, the last
ITERS = [0, 1, 250, 499, 500, 501, 58639, 58640, 58641, 80629, 80630, 87959]


@pytest.fixture(scope="module", params=["SOLO_R50_1x", "SOLOv2_R50_1x", "SOLOv2_Panoptic_R50_1x"])
def twins(request):
    """(yaml-built model, lazy-built model with the yaml one's weights, yaml cfg, lazy cfg)."""
    ycfg = solo_d2.model_zoo.get_config(request.param + ".yaml")
    ycfg.MODEL.DEVICE = "cpu"
    ycfg.MODEL.WEIGHTS = ""
    ycfg.DATASETS.TRAIN = ycfg.DATASETS.TEST = ()
    lcfg = solo_d2.model_zoo.get_config(request.param + ".py")
    lcfg.train.device = "cpu"
    torch.manual_seed(0)
    ymodel = build_model(ycfg)
    # trained-like heads: candidates and masks to compare (a fresh head predicts nothing)
    make_head_confident(ymodel, cls_bias=-1.0)
    lmodel = instantiate(lcfg.model)
    assert type(lmodel) is type(ymodel) and type(lmodel.head) is type(ymodel.head)
    result = lmodel.load_state_dict(ymodel.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return ymodel, lmodel, ycfg, lcfg


def _batch(train: bool):
    g = torch.Generator().manual_seed(5)
    out = []
    for h, w in ((64, 96), (96, 64)):
        x = {"image": torch.randint(0, 256, (3, h, w), generator=g).float(),
             "height": 2 * h, "width": 2 * w}
        if train:
            inst = Instances((h, w))
            masks = torch.zeros(2, h, w, dtype=torch.bool)
            masks[0, 10:60, 20:60] = True
            masks[1, 30:60, 5:40] = True
            inst.gt_masks = BitMasks(masks)
            inst.gt_boxes = Boxes(torch.tensor([[20.0, 10, 60, 60], [5, 30, 40, 60]]))
            inst.gt_classes = torch.tensor([3, 17])
            x["instances"] = inst
            x["sem_seg"] = torch.randint(0, 54, (h, w), generator=g)  # read by PanopticSOLO
        out.append(x)
    return out


def test_same_predictions(twins):
    ymodel, lmodel, _, _ = twins
    with torch.no_grad():
        ours = lmodel.eval()(_batch(train=False))
        theirs = ymodel.eval()(_batch(train=False))
    for a, b in zip(ours, theirs):
        a, b = a["instances"], b["instances"]
        assert len(a) > 0 and a.image_size == b.image_size
        assert torch.equal(a.pred_masks, b.pred_masks)
        assert torch.equal(a.scores, b.scores)
        assert torch.equal(a.pred_classes, b.pred_classes)
        assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)
    for a, b in zip(ours, theirs):  # PanopticSOLO: its stuff and merged outputs too
        assert a.keys() == b.keys()
        if "sem_seg" in a:
            assert torch.equal(a["sem_seg"], b["sem_seg"])
            assert torch.equal(a["panoptic_seg"][0], b["panoptic_seg"][0])
            assert a["panoptic_seg"][1] == b["panoptic_seg"][1]


@pytest.fixture
def deterministic():
    """Deterministic kernels: SOLOv2's backward through its gather of cell kernels accumulates
    in thread order otherwise (the same model twice differs by ~1e-13 in some gradients)."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


# the schedulers are stepped to set learning rates, not after optimizer steps
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_same_losses_gradients_and_updates(twins, deterministic):
    ymodel, lmodel, ycfg, lcfg = twins
    y_opt = SOLOTrainer.build_optimizer(ycfg, ymodel)
    l_opt = LazySOLOTrainer.build_optimizer(lcfg, lmodel)
    losses = []
    for model, opt in ((ymodel, y_opt), (lmodel, l_opt)):
        model.train()
        opt.zero_grad()
        loss = model(_batch(train=True))
        sum(loss.values()).backward()
        losses.append({k: v.detach() for k, v in loss.items()})
    expected = {"loss_mask", "loss_cls"}
    if hasattr(ymodel, "sem_seg_head"):  # PanopticSOLO
        expected.add("loss_sem_seg")
    assert losses[0].keys() == losses[1].keys() == expected
    for k in losses[0]:
        assert torch.equal(losses[0][k], losses[1][k]), k
    y_params, l_params = dict(ymodel.named_parameters()), dict(lmodel.named_parameters())
    for name, p in y_params.items():
        if p.grad is None:
            assert l_params[name].grad is None, name
        else:
            assert torch.equal(p.grad, l_params[name].grad), name

    # identical groups: the same parameters with the same settings, group by group
    def groups(opt, model):
        names = {id(p): n for n, p in model.named_parameters()}
        return [([names[id(p)] for p in g["params"]], {k: v for k, v in g.items() if k != "params"})
                for g in opt.param_groups]

    assert groups(l_opt, lmodel) == groups(y_opt, ymodel)
    assert type(l_opt).__name__ == type(y_opt).__name__  # SOLOv2: clipping of all gradients
    # the same learning rates along the schedule
    y_sched, l_sched = build_lr_scheduler(ycfg, y_opt), lazy_lr_scheduler(lcfg, l_opt)
    for it in ITERS:
        for sched in (y_sched, l_sched):
            sched.last_epoch = it - 1
            sched.step()  # sets the groups' lr for iteration ``it``
        assert [g["lr"] for g in l_opt.param_groups] == [g["lr"] for g in y_opt.param_groups]
    # the same update (momentum, weight decay, clipping) at the last lr
    y_opt.step()
    l_opt.step()
    for name, p in y_params.items():
        assert torch.equal(p, l_params[name]), name
