"""Quick start: Decoupled SOLO on the shapes dataset (the LazyConfig twin of
Decoupled_SOLO_R18_shapes.yaml).

    python train_net.py --config-file configs/quick_schedules/Decoupled_SOLO_R18_shapes.py
"""
from solo_d2.modeling import DecoupledSOLOHead

from .SOLO_R18_shapes import dataloader, lr_multiplier, model, optimizer, train

model.head._target_ = DecoupledSOLOHead
train.output_dir = "output/quick_schedules/Decoupled_SOLO_R18_shapes"
