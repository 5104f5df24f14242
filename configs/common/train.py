"""Training settings read by solo_d2's trainer (``python train_net.py --config-file X.py``):
Detectron2's configs/common/train.py, plus what solo_d2's yaml configs also set.

``train.amp.precision``: "auto" (float16 with grad scaling on CUDA, bfloat16 on a CPU with
bf16 units, fp32 with a warning on one without), "float16" or "bfloat16" (yaml
SOLVER.AMP.PRECISION). ``train.clip_grad``: one norm over all
gradients, as mmdet's ``clip_grad`` (yaml CLIP_TYPE "full_model"). ``train.cluster``: long
runs on clusters, the yaml CLUSTER.* keys in lower case (docs/CLUSTERS.md).
"""
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
    cluster=dict(
        # signals on which training checkpoints its iteration and exits with status 75
        preempt_signals=["SIGTERM", "SIGUSR1"],
        heartbeat_period=5.0,  # seconds between two heartbeats of every process
        dead_process_timeout=120.0,  # seconds without one: the others stop (exit status 76)
        collective_timeout=1800.0,  # seconds a collective may wait (Detectron2's 30 min)
    ),
)
