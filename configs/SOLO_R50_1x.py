"""mmdet 3.3.0 solo_r50_fpn_1x_coco (33.1 mask AP): the LazyConfig twin of SOLO_R50_1x.yaml.

    python train_net.py --config-file configs/SOLO_R50_1x.py --num-gpus 8
"""
from .common.coco_schedule import multistep
from .common.data.coco import dataloader
from .common.models.solo import model
from .common.optim import SGD as optimizer
from .common.train import train

# 12 epochs of 7,330 iterations (16 images per batch); lr / 10 at epochs 8 and 11
train.max_iter = 87960
lr_multiplier = multistep(
    max_iter=87960, milestones=[58640, 80630], warmup_iters=500, warmup_factor=0.001
)
train.checkpointer.period = 7330  # one epoch
train.output_dir = "output/SOLO_R50_1x"
