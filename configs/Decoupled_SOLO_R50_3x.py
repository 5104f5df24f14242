"""mmdet 3.3.0 decoupled-solo_r50_fpn_3x_coco (36.7 mask AP): the LazyConfig twin of
Decoupled_SOLO_R50_3x.yaml."""
from solo_d2.modeling import DecoupledSOLOHead

from .SOLO_R50_3x import dataloader, lr_multiplier, model, optimizer, train

model.head._target_ = DecoupledSOLOHead
train.output_dir = "output/Decoupled_SOLO_R50_3x"
