"""Config keys of solo_d2: ``add_solo_config(cfg)`` adds every ``MODEL.SOLO.*`` default.

Defaults are those of mmdet 3.3.0's ``solo_r50_fpn_1x_coco`` (SOLOHead); the yaml files under
``configs/`` override them per published model.
"""
from detectron2.config import CfgNode as CN


# Long runs on clusters (docs/CLUSTERS.md), written once: the yaml keys CLUSTER.<NAME>, the
# LazyConfig's train.cluster.<name> (configs/common/train.py) and solo_d2.launch's defaults.
CLUSTER_DEFAULTS = dict(
    # signals on which training finishes its iteration, writes a checkpoint and exits with
    # status 75 (preemption; SLURM warns with SIGUSR1); () keeps the signals' default action
    preempt_signals=("SIGTERM", "SIGUSR1"),
    # seconds between two heartbeats of every process of a multi-process run
    heartbeat_period=5.0,
    # seconds without a heartbeat after which a process is dead: the others stop (exit status
    # 76) instead of waiting for the collective timeout
    dead_process_timeout=120.0,
    # seconds a collective (all-reduce, barrier) may wait for every process (Detectron2's 30 min)
    collective_timeout=1800.0,
)


def add_solo_config(cfg: CN) -> None:
    """Add the SOLO-family keys to a Detectron2 config, in place. Safe to call twice."""
    if hasattr(cfg.MODEL, "SOLO"):
        return
    _C = cfg
    _C.MODEL.SOLO = CN()
    # Registered name of the head: SOLOHead, DecoupledSOLOHead, DecoupledSOLOLightHead, SOLOV2Head.
    _C.MODEL.SOLO.HEAD_NAME = "SOLOHead"
    # Number of foreground classes (no background class).
    _C.MODEL.SOLO.NUM_CLASSES = 80
    # Backbone features the head reads, finest first; one per grid level.
    _C.MODEL.SOLO.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    # Channels of the hidden convolutions of every branch.
    _C.MODEL.SOLO.FEAT_CHANNELS = 256
    # Number of stacked 3x3 conv + norm + ReLU layers in each branch.
    _C.MODEL.SOLO.STACKED_CONVS = 7
    # Nominal stride of each level, used for target placement and the small-mask filter (mmdet "strides").
    _C.MODEL.SOLO.STRIDES = [8, 8, 16, 32, 32]
    # sqrt(box area) range [lo, hi] (inclusive) of the instances each level is responsible for.
    _C.MODEL.SOLO.SCALE_RANGES = [[1, 96], [48, 192], [96, 384], [192, 768], [384, 2048]]
    # Half-size of the positive centre region, as a fraction of half the box size.
    _C.MODEL.SOLO.POS_SCALE = 0.2
    # Grid size S of each level: S*S location cells.
    _C.MODEL.SOLO.NUM_GRIDS = [40, 36, 24, 16, 12]
    # Index of the category conv before which features are resized to S x S.
    _C.MODEL.SOLO.CLS_DOWN_INDEX = 0
    # Norm of the stacked convs ("GN" = 32-group GroupNorm, as mmdet; "" for none).
    _C.MODEL.SOLO.NORM = "GN"
    # Deformable convs in the head: "" (none), "DCN" (v1) or "DCNv2" (modulated); torchvision's op.
    # DecoupledSOLOLightHead uses it in the last stacked conv; SOLOV2Head as DCN_APPLY_TO_ALL_CONV says.
    _C.MODEL.SOLO.DCN_TYPE = ""
    # SOLOV2Head: deformable convs in every stacked conv (True) or only in the last one (False).
    _C.MODEL.SOLO.DCN_APPLY_TO_ALL_CONV = True
    # mmdet 3.3.0 trains a cell whose instance mask vanishes when downscaled to the
    # level's mask resolution (all-zero dice target); True drops such instances on that level.
    _C.MODEL.SOLO.DROP_VANISHED_TARGETS = True
    # Prior probability used to initialise the category and mask-projection biases.
    _C.MODEL.SOLO.PRIOR_PROB = 0.01
    # Training memory (SOLO / Decoupled SOLO mask towers): keep only the conv outputs for
    # backward and recompute each norm + ReLU there. Same gradients, one full-size activation
    # less per layer (its measured cost and saving: docs/benchmark_cpu.md); needs torch >= 2.4.
    # Skipped for BatchNorm in training mode (recomputing would update its statistics twice).
    _C.MODEL.SOLO.RECOMPUTE_NORM_ACT = True
    # Memory layout of the conv weights and the input batch: "channels_last" (NHWC),
    # "contiguous" (NCHW, PyTorch's default) or "auto": NHWC when MODEL.SOLO.TEST.AMP or
    # SOLVER.AMP.ENABLED is set (measured faster under bf16 on the CPU, docs/MIXED_PRECISION.md),
    # NCHW in fp32 (mmdet's summation order: the parity tests hold it to 1e-4).
    _C.MODEL.SOLO.MEMORY_FORMAT = "auto"

    # SOLOv2 only: the unified mask-feature branch (mmdet MaskFeatModule).
    _C.MODEL.SOLO.MASK_FEAT = CN()
    # Hidden channels of the mask-feature branch.
    _C.MODEL.SOLO.MASK_FEAT.FEAT_CHANNELS = 128
    # First and last input level (index into IN_FEATURES) fused into the mask features.
    _C.MODEL.SOLO.MASK_FEAT.START_LEVEL = 0
    _C.MODEL.SOLO.MASK_FEAT.END_LEVEL = 3
    # Channels of the unified mask features (= dynamic kernel length for a 1x1 kernel).
    _C.MODEL.SOLO.MASK_FEAT.OUT_CHANNELS = 256
    # Stride of the unified mask features w.r.t. the input image.
    _C.MODEL.SOLO.MASK_FEAT.MASK_STRIDE = 4
    # Deformable convs in the mask-feature branch: "", "DCN" or "DCNv2".
    _C.MODEL.SOLO.MASK_FEAT.DCN_TYPE = ""
    # SOLOv2 only: spatial size of the dynamic kernels.
    _C.MODEL.SOLO.DYNAMIC_CONV_SIZE = 1

    _C.MODEL.SOLO.LOSS = CN()
    # Weight of the dice loss on positive cells' masks.
    _C.MODEL.SOLO.LOSS.DICE_WEIGHT = 3.0
    # Focal loss alpha, gamma and weight for the category branch.
    _C.MODEL.SOLO.LOSS.FOCAL_ALPHA = 0.25
    _C.MODEL.SOLO.LOSS.FOCAL_GAMMA = 2.0
    _C.MODEL.SOLO.LOSS.FOCAL_WEIGHT = 1.0

    _C.MODEL.SOLO.TEST = CN()
    # Keep at most this many candidates (by score) before Matrix NMS; -1: no limit.
    _C.MODEL.SOLO.TEST.NMS_PRE = 500
    # Category score a cell needs to become a candidate.
    _C.MODEL.SOLO.TEST.SCORE_THRESH = 0.1
    # Probability threshold that binarises masks.
    _C.MODEL.SOLO.TEST.MASK_THRESH = 0.5
    # Score a mask must keep after Matrix NMS decay.
    _C.MODEL.SOLO.TEST.FILTER_THRESH = 0.05
    # Matrix NMS decay kernel: "gaussian" or "linear".
    _C.MODEL.SOLO.TEST.KERNEL = "gaussian"
    # Sigma of the gaussian kernel.
    _C.MODEL.SOLO.TEST.SIGMA = 2.0
    # Instances kept per image; -1: no limit.
    _C.MODEL.SOLO.TEST.MAX_PER_IMG = 100
    # Inference autocast dtype: "" (fp32), "bfloat16" or "float16"; convolutions run in it,
    # mask projection of the candidates, scoring and Matrix NMS stay fp32 (docs/MIXED_PRECISION.md).
    _C.MODEL.SOLO.TEST.AMP = ""

    # COCO-format datasets to register by name, for DATASETS.TRAIN / TEST without Python:
    # [[name, json_file, image_root], ...] (Detectron2's register_coco_instances).
    _C.DATASETS.REGISTER_COCO_INSTANCES = []
    # COCO panoptic datasets to register by name (panoptic SOLO, docs/PANOPTIC.md):
    # [[name, image_root, panoptic_root, panoptic_json], ...]; things and stuff come from the
    # categories' isthing.
    _C.DATASETS.REGISTER_COCO_PANOPTIC = []

    # Resize with OpenCV's bilinear (as mmdet/mmcv do) instead of PIL's; needed for pixel
    # parity with mmdet-trained checkpoints. Applies to ResizeShortestEdge in the SOLO mapper.
    _C.INPUT.RESIZE_BACKEND = "pil"

    # "SGD" (Detectron2's optimizer, as mmdet's SOLO configs use) or "ADAMW" (same parameter
    # groups; used by the from-scratch quick-start configs, where it learns much faster).
    _C.SOLVER.OPTIMIZER = "SGD"
    # AdamW's (beta1, beta2).
    _C.SOLVER.ADAMW_BETAS = (0.9, 0.999)
    # SOLOTrainer: iterations between writes of the metrics (console, metrics.json,
    # TensorBoard); written values are medians over that many iterations (1: every value).
    # Detectron2's DefaultTrainer fixes it at 20.
    _C.SOLVER.LOG_PERIOD = 20
    # SOLOTrainer: autocast dtype of training under SOLVER.AMP.ENABLED (Detectron2 has no key
    # for it): "auto" (float16 with grad scaling on CUDA, Detectron2's; bfloat16 on a CPU with
    # bf16 units, fp32 with a warning on one without, where bf16 is slower than fp32),
    # "float16" (grad scaling) or "bfloat16" (no scaling needed: fp32's exponent range).
    _C.SOLVER.AMP.PRECISION = "auto"

    # Distinct bad files (unreadable image, annotation that cannot become a mask) a training
    # run skips before it stops with their list (exit status 65): a whole number >= 1 is a
    # count, a value in (0, 1) a fraction of the training images, 0 none, negative no limit.
    _C.DATALOADER.MAX_BAD_FILES = 0.001

    # Long runs on clusters (docs/CLUSTERS.md): CLUSTER_DEFAULTS, in upper case.
    _C.CLUSTER = CN({k.upper(): list(v) if isinstance(v, tuple) else v
                     for k, v in CLUSTER_DEFAULTS.items()})
