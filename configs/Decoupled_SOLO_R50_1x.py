"""mmdet 3.3.0 decoupled-solo_r50_fpn_1x_coco (33.9 mask AP): the LazyConfig twin of
Decoupled_SOLO_R50_1x.yaml."""
from solo_d2.modeling import DecoupledSOLOHead

from .SOLO_R50_1x import dataloader, lr_multiplier, model, optimizer, train

model.head._target_ = DecoupledSOLOHead
train.output_dir = "output/Decoupled_SOLO_R50_1x"
