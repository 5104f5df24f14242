"""SOLOv2 R50 with large-scale jitter: SOLOv2_R50_1x's model (mmdet 3.3.0 solov2_r50_fpn_1x_coco)
on the data, optimizer and 200-epoch schedule of mmdet's solo_r50_fpn_8xb8-lsj-200e_coco
(SOLO_R50_LSJ_200e.py), which mmdet does not publish for SOLOv2.

    python train_net.py --config-file configs/SOLOv2_R50_LSJ_200e.py --num-gpus 8
"""
from .common.models.solov2 import model
from .SOLO_R50_LSJ_200e import dataloader, lr_multiplier, optimizer, train

model.train_fixed_size = (1024, 1024)  # mmdet BatchFixedSizePad
model.channels_last = True  # NHWC: faster under autocast
train.output_dir = "output/SOLOv2_R50_LSJ_200e"
