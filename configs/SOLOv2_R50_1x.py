"""mmdet 3.3.0 solov2_r50_fpn_1x_coco (34.8 mask AP): SOLOV2Head, 12 epochs, single scale
(the LazyConfig twin of SOLOv2_R50_1x.yaml)."""
from .common.models.solov2 import model
from .SOLO_R50_1x import dataloader, lr_multiplier, optimizer, train

# mmdet optim_wrapper clip_grad=dict(max_norm=35, norm_type=2): one norm over all gradients
train.clip_grad.enabled = True
train.clip_grad.max_norm = 35.0
train.clip_grad.norm_type = 2.0
train.output_dir = "output/SOLOv2_R50_1x"
