"""Training settings read by solo_d2's trainer (``python train_net.py --config-file X.py``):
Detectron2's configs/common/train.py, plus what solo_d2's yaml configs also set.

``train.amp.precision``: "auto" (float16 with grad scaling on CUDA, bfloat16 on a CPU with
bf16 units, fp32 with a warning on one without), "float16" or "bfloat16" (yaml
SOLVER.AMP.PRECISION). ``train.clip_grad``: one norm over all
gradients, as mmdet's ``clip_grad`` (yaml CLIP_TYPE "full_model"). ``train.cluster``: long
runs on clusters, the yaml CLUSTER.* keys in lower case (docs/CLUSTERS.md).
"""
from solo_d2.config import CLUSTER_DEFAULTS

train = dict(
    output_dir="./output",
    # torchvision's ImageNet ResNet-50 (mmdet's torchvision://resnet50)
    init_checkpoint="torchvision://resnet50",
    max_iter=90000,
    amp=dict(enabled=False, precision="auto"),
    clip_grad=dict(enabled=False, max_norm=35.0, norm_type=2.0),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=5000, max_to_keep=None),
    eval_period=0,  # 0: evaluate once, after training
    log_period=20,
    device="cuda",
    seed=-1,
    # signals, heartbeat, dead-process and collective timeouts (solo_d2.config.CLUSTER_DEFAULTS)
    cluster={k: list(v) if isinstance(v, tuple) else v for k, v in CLUSTER_DEFAULTS.items()},
)
