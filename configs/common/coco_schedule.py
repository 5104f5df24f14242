"""Learning-rate schedules stated in iterations, as the yaml configs state them.

Epochs of COCO train2017 count its 117,266 images with annotations (mmdet and Detectron2
both drop the images without): ``iters_per_epoch(16)`` = 7,330 iterations at 16 images per
batch, ``iters_per_epoch(64)`` = 1,833.
"""
import math

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

COCO_TRAIN_IMAGES = 117266


def iters_per_epoch(batch_size: int) -> int:
    """Iterations of one COCO train2017 epoch at ``batch_size`` images per iteration."""
    return math.ceil(COCO_TRAIN_IMAGES / batch_size)


def multistep(max_iter, milestones, warmup_iters, warmup_factor, gamma=0.1):
    """Linear warm-up over ``warmup_iters`` from ``warmup_factor``, then the lr times
    ``gamma`` at each milestone (iterations): Detectron2's WarmupMultiStepLR as the yaml
    configs' SOLVER.* build it."""
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[gamma**k for k in range(len(milestones) + 1)],
            milestones=list(milestones),
            num_updates=max_iter,
        ),
        warmup_length=min(warmup_iters / max_iter, 1.0),
        warmup_factor=warmup_factor,
        warmup_method="linear",
    )
