"""mmdet 3.3.0 solo_r50_fpn_8xb8-lsj-200e_coco: SOLO R50 with large-scale jitter at 1024 px,
64 images per batch, 200 epochs, SGD lr 0.04 and weight decay 4e-5 with the gradient norm
clipped at 35, mixed precision (fp16 on GPUs: AmpOptimWrapper; bf16 on the CPU).

    python train_net.py --config-file configs/SOLO_R50_LSJ_200e.py --num-gpus 8
"""
from .common.coco_schedule import multistep
from .common.data.coco_lsj import dataloader
from .common.models.solo import model
from .common.optim import SGD as optimizer
from .common.train import train

model.train_fixed_size = (1024, 1024)  # mmdet BatchFixedSizePad
model.channels_last = True  # NHWC: faster under autocast (README "Mixed precision")
optimizer.lr = 0.04  # 0.01 x 4 for 64 images per batch
optimizer.weight_decay = 4e-5  # every parameter, norms too (weight_decay_norm follows)
train.amp.enabled = True
train.clip_grad.enabled = True  # mmdet clip_grad=dict(max_norm=35, norm_type=2)
train.clip_grad.max_norm = 35.0
train.clip_grad.norm_type = 2.0
# 200 epochs of 1,833 iterations (64 images per batch); lr / 10 at epochs 176 and 192
# (mmdet: 25 epochs of an 8-fold RepeatDataset, milestones 22 and 24); warm-up 1,000 iterations
# from 0.067
train.max_iter = 366600
lr_multiplier = multistep(
    max_iter=366600, milestones=[322608, 351936], warmup_iters=1000, warmup_factor=0.067
)
train.checkpointer.period = 14664  # 8 epochs: one of mmdet's repeated epochs
train.checkpointer.max_to_keep = 2  # mmdet max_keep_ckpts=2
train.eval_period = 73320  # 40 epochs (mmdet val_interval=5 repeated epochs)
train.output_dir = "output/SOLO_R50_LSJ_200e"
