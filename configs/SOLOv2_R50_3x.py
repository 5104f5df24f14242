"""mmdet 3.3.0 solov2_r50_fpn_ms-3x_coco (37.5 mask AP): multi-scale training, 36 epochs
(the LazyConfig twin of SOLOv2_R50_3x.yaml)."""
from .common.coco_schedule import multistep
from .SOLOv2_R50_1x import dataloader, model, optimizer, train

# 36 epochs of 7,330 iterations; lr / 10 at epochs 27 and 33; warm-up from 1/3 (LinearLR)
train.max_iter = 263880
lr_multiplier = multistep(
    max_iter=263880, milestones=[197910, 241890], warmup_iters=500,
    warmup_factor=0.3333333333333333,
)
dataloader.train.mapper.augmentations[0].short_edge_length = (800, 768, 736, 704, 672, 640)
train.output_dir = "output/SOLOv2_R50_3x"
