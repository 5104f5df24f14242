"""Panoptic SOLOv2 R50 on COCO 2017 panoptic, 12 epochs (the LazyConfig twin of
SOLOv2_Panoptic_R50_1x.yaml; docs/PANOPTIC.md).

    python train_net.py --config-file configs/SOLOv2_Panoptic_R50_1x.py --num-gpus 8
"""
from .common.data.coco_panoptic import dataloader
from .common.models.panoptic_solov2 import model
from .SOLOv2_R50_1x import lr_multiplier, optimizer, train

train.output_dir = "output/SOLOv2_Panoptic_R50_1x"
