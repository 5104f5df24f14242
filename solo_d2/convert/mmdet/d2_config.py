"""mmdet config -> Detectron2 config: :func:`mmdet_config_to_d2` turns an mmdet SOLO-family
model / pipeline config (as read by :mod:`.config_reader`) into the Detectron2 config
(``get_cfg()`` + ``add_solo_config``) that builds the same network: backbone (ResNet /
ResNeXt, DCN stages), FPN, head settings (shared ones here, head-specific ones from
:data:`~.heads.MMDET_HEADS`), test thresholds, input normalisation and test resize.
Anything it cannot express is an :class:`~.errors.MMDetConversionError` naming the value.
"""
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .errors import MMDetConversionError, require
from .heads import MMDET_HEADS, SUPPORTED_MODEL_TYPES
from .mmcv_layers import dcn_type, norm_name

if TYPE_CHECKING:
    from detectron2.config import CfgNode

__all__ = ["mmdet_config_to_d2"]


def _find_transforms(pipeline: Any) -> List[dict]:
    """All transform dicts of a pipeline, nested ones (MultiScaleFlipAug, TTA) included."""
    out: List[dict] = []
    if isinstance(pipeline, dict):
        out.append(pipeline)
        for key in ("transforms",):
            out.extend(_find_transforms(pipeline.get(key)))
    elif isinstance(pipeline, (list, tuple)):
        for p in pipeline:
            out.extend(_find_transforms(p))
    return out


def _test_pipeline(cfg: Dict[str, Any]) -> Optional[list]:
    for top in ("test_dataloader", "val_dataloader"):  # 3.x
        ds = (cfg.get(top) or {}).get("dataset") or {}
        if ds.get("pipeline"):
            return ds["pipeline"]
    ds = (cfg.get("data") or {}).get("test") or {}  # 2.x
    if isinstance(ds, dict) and ds.get("pipeline"):
        return ds["pipeline"]
    return cfg.get("test_pipeline")


def _test_scale(cfg: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    """(short, long) edge limits of the test resize, or None when the config has none."""
    transforms = _find_transforms(_test_pipeline(cfg))
    scale = None
    for t in transforms:
        if t.get("type") == "MultiScaleFlipAug":  # 2.x
            s = t.get("img_scale", t.get("scale"))
            if isinstance(s, list):
                if len(s) > 1:
                    warnings.warn(f"multi-scale test {s}: using the first scale")
                s = s[0]
            scale = s
        elif t.get("type") == "Resize":
            if t.get("keep_ratio", True) is False:
                warnings.warn("test Resize with keep_ratio=False cannot be expressed by "
                              "ResizeShortestEdge; using its scale as short/long edge limits")
            s = t.get("scale", t.get("img_scale"))
            if s is not None:
                scale = s[0] if isinstance(s, list) else s
    if scale is None:
        return None
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        warnings.warn(f"test resize scale {scale!r} is not a (w, h) pair; keeping defaults")
        return None
    return int(min(scale)), int(max(scale))


def _normalisation(cfg: Dict[str, Any]) -> Tuple[List[float], List[float], str]:
    """(mean, std, "RGB"|"BGR") of the model input, from 3.x data_preprocessor or 2.x."""
    dp = (cfg.get("model") or {}).get("data_preprocessor")
    if dp:
        mean = dp.get("mean") or [0.0, 0.0, 0.0]
        std = dp.get("std") or [1.0, 1.0, 1.0]
        rgb = bool(dp.get("bgr_to_rgb", False) or dp.get("rgb_to_bgr", False))
        return [float(v) for v in mean], [float(v) for v in std], "RGB" if rgb else "BGR"
    norm = cfg.get("img_norm_cfg")
    if norm is None:
        for t in _find_transforms(_test_pipeline(cfg)):
            if t.get("type") == "Normalize":
                norm = t
                break
    require(norm is not None, "mmdet config has neither model.data_preprocessor nor "
            "img_norm_cfg / a Normalize transform: cannot tell the input normalisation")
    fmt = "RGB" if norm.get("to_rgb", True) else "BGR"
    return [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]], fmt


def _head_settings(head: dict, test_cfg: dict) -> Dict[str, Any]:
    """MODEL.SOLO.* values (flat key -> value) of an mmdet SOLO-family head dict (its type
    checked by :func:`_check_solo_family`): the settings every head shares, then what its
    :class:`~.heads.MMDetHead` description adds."""
    out: Dict[str, Any] = {
        "HEAD_NAME": head["type"],
        "NUM_CLASSES": int(head["num_classes"]),
        "FEAT_CHANNELS": int(head.get("feat_channels", 256)),
        "STACKED_CONVS": int(head.get("stacked_convs", 4)),
        "STRIDES": [int(s) for s in head.get("strides", (4, 8, 16, 32, 64))],
        "SCALE_RANGES": [[int(a), int(b)] for a, b in head.get(
            "scale_ranges", ((8, 32), (16, 64), (32, 128), (64, 256), (128, 512)))],
        "POS_SCALE": float(head.get("pos_scale", 0.2)),
        "NUM_GRIDS": [int(s) for s in head.get("num_grids", (40, 36, 24, 16, 12))],
        "CLS_DOWN_INDEX": int(head.get("cls_down_index", 0)),
        # mmdet's default norm_cfg is 32-group GN; an explicit None means no norm
        "NORM": norm_name(head.get("norm_cfg", {"type": "GN", "num_groups": 32}),
                          "mask_head.norm_cfg"),
    }
    spec = MMDET_HEADS[head["type"]]
    dcn = head.get("dcn_cfg")
    if dcn:
        require(spec.accepts_dcn_cfg, f"dcn_cfg on {head['type']} is not supported")
        out["DCN_TYPE"] = dcn_type(dcn, "mask_head.dcn_cfg")
    if spec.extra_settings is not None:
        out.update(spec.extra_settings(head, out["NORM"]))
    loss_mask = head.get("loss_mask") or {}
    loss_cls = head.get("loss_cls") or {}
    if loss_mask and (loss_mask.get("type") != "DiceLoss" or loss_mask.get("eps", 1e-3) != 1e-3
                      or loss_mask.get("naive_dice", False)):
        warnings.warn(f"loss_mask {loss_mask} differs from mmdet's default DiceLoss, which "
                      "solo_d2 trains with (inference is unaffected)")
    if loss_cls and loss_cls.get("type") != "FocalLoss":
        warnings.warn(f"loss_cls {loss_cls.get('type')} is not FocalLoss; solo_d2 trains with "
                      "sigmoid focal loss (inference is unaffected)")
    out["LOSS.DICE_WEIGHT"] = float(loss_mask.get("loss_weight", 3.0))
    out["LOSS.FOCAL_ALPHA"] = float(loss_cls.get("alpha", 0.25))
    out["LOSS.FOCAL_GAMMA"] = float(loss_cls.get("gamma", 2.0))
    out["LOSS.FOCAL_WEIGHT"] = float(loss_cls.get("loss_weight", 1.0))
    test_keys = {
        "nms_pre": ("TEST.NMS_PRE", int),
        "score_thr": ("TEST.SCORE_THRESH", float),
        "mask_thr": ("TEST.MASK_THRESH", float),
        "filter_thr": ("TEST.FILTER_THRESH", float),
        "kernel": ("TEST.KERNEL", str),
        "sigma": ("TEST.SIGMA", float),
        "max_per_img": ("TEST.MAX_PER_IMG", int),
    }
    for k, (ours, typ) in test_keys.items():
        if k in test_cfg:
            out[ours] = typ(test_cfg[k])
    return out


def _resnext_widths(bb: dict, depth: int, source: str) -> Tuple[int, int]:
    """(RESNETS.NUM_GROUPS, WIDTH_PER_GROUP) of an mmdet ResNet / ResNeXt. mmdet's ResNeXt
    bottleneck width is floor(planes * base_width / 64) * groups (planes = 64 * 2^stage), or
    planes when groups == 1; Detectron2's is NUM_GROUPS * WIDTH_PER_GROUP * 2^stage."""
    if bb.get("type") != "ResNeXt":
        return 1, 64
    groups = int(bb.get("groups", 1))
    base_width = bb.get("base_width", 4)
    require(depth >= 50, f"{source}: ResNeXt depth {depth} (mmdet builds 50, 101, 152)")
    if groups == 1:
        return 1, 64
    require(float(base_width) == int(base_width) and int(base_width) > 0,
            f"{source}: ResNeXt base_width={base_width!r} must be a positive integer")
    return groups, int(base_width)


def _backbone_dcn(bb: dict, depth: int, source: str) -> Dict[str, Any]:
    """mmdet ResNet ``dcn`` / ``stage_with_dcn`` -> RESNETS.DEFORM_* values (Detectron2's
    DeformBottleneckBlock: every block of a stage, offset conv ``conv2_offset``)."""
    dcn = bb.get("dcn")
    stages = tuple(bool(v) for v in bb.get("stage_with_dcn", (False,) * 4))
    if not dcn or not any(stages):
        return {"on": [False] * 4, "modulated": False, "groups": 1}
    require(len(stages) == 4, f"{source}: stage_with_dcn={stages} needs 4 entries")
    require(isinstance(dcn, dict) and dcn.get("type") in ("DCN", "DCNv2"),
            f"{source}: backbone dcn={dcn!r}: only type 'DCN' or 'DCNv2' is supported")
    require(depth >= 50, f"{source}: backbone dcn on ResNet-{depth}: Detectron2 has "
            "deformable blocks for bottleneck ResNets (depth >= 50) only")
    require(not dcn.get("fallback_on_stride", False),
            f"{source}: backbone dcn fallback_on_stride=True is not supported")
    groups = int(dcn.get("deform_groups", dcn.get("deformable_groups", 1)))
    return {"on": list(stages), "modulated": dcn["type"] == "DCNv2", "groups": groups}


def _check_solo_family(cfg: Dict[str, Any], source: str) -> Tuple[dict, str]:
    model = cfg.get("model")
    require(isinstance(model, dict) and "type" in model,
            f"{source}: no model=dict(type=...) found (top-level keys: {sorted(cfg)[:20]})")
    mtype = model["type"]
    head = model.get("mask_head") or {}
    htype = head.get("type")
    if mtype not in SUPPORTED_MODEL_TYPES or htype not in SUPPORTED_MODEL_TYPES[mtype]:
        supported = "; ".join(f"{m} with {', '.join(h)}" for m, h in SUPPORTED_MODEL_TYPES.items())
        raise MMDetConversionError(
            f"{source}: not a supported SOLO-family checkpoint: found model type {mtype!r} with "
            f"mask_head type {htype!r}; supported: {supported}"
        )
    return model, htype


def mmdet_config_to_d2(
    mm: Dict[str, Any], source: str = "mmdet config"
) -> Tuple["CfgNode", List[int]]:
    """Detectron2 config (``get_cfg()`` + ``add_solo_config``) for an mmdet SOLO config.

    Returns ``(cfg, fpn_stages)``: the CfgNode and the Detectron2 stage of each FPN input.
    """
    from detectron2.config import get_cfg

    from ...config import add_solo_config

    model, htype = _check_solo_family(mm, source)
    bb = model.get("backbone") or {}
    neck = model.get("neck") or {}
    head = model["mask_head"]

    require(bb.get("type") in ("ResNet", "ResNeXt"),
            f"{source}: backbone type {bb.get('type')!r} is not supported (ResNet, ResNeXt)")
    depth = int(bb.get("depth", 50))
    require(depth in (18, 34, 50, 101, 152), f"{source}: ResNet depth {depth}")
    require(int(bb.get("num_stages", 4)) == 4, f"{source}: ResNet num_stages must be 4")
    num_groups, width_per_group = _resnext_widths(bb, depth, source)
    deform = _backbone_dcn(bb, depth, source)
    for key, default in (("deep_stem", False), ("avg_down", False), ("plugins", None)):
        require(bb.get(key, default) in (default, False, None),
                f"{source}: ResNet {key}={bb.get(key)!r} is not supported")
    require(tuple(bb.get("dilations", (1, 1, 1, 1))) == (1, 1, 1, 1)
            and tuple(bb.get("strides", (1, 2, 2, 2))) == (1, 2, 2, 2),
            f"{source}: non-default ResNet strides/dilations are not supported")
    require(int(bb.get("base_channels", 64)) == 64
            and int(bb.get("stem_channels", 64) or 64) == 64,
            f"{source}: ResNet base/stem channels other than 64 are not supported")
    style = bb.get("style", "pytorch")
    require(style in ("pytorch", "caffe"), f"{source}: ResNet style {style!r}")
    bb_norm = bb.get("norm_cfg") or {"type": "BN"}
    norm_eval = bool(bb.get("norm_eval", True))
    if bb_norm.get("type") in ("BN", "SyncBN") and norm_eval:
        res_norm = "FrozenBN"
    else:
        res_norm = norm_name(bb_norm, "backbone.norm_cfg")
    out_indices = tuple(int(i) for i in bb.get("out_indices", (0, 1, 2, 3)))

    require(neck.get("type") == "FPN", f"{source}: neck type {neck.get('type')!r} (FPN only)")
    start = int(neck.get("start_level", 0))
    end = int(neck.get("end_level", -1))
    require(end in (-1, len(out_indices) - 1), f"{source}: FPN end_level={end} unsupported")
    stages = [out_indices[i] + 2 for i in range(start, len(out_indices))]
    require(stages == list(range(stages[0], 6)),
            f"{source}: FPN inputs res{stages} must be consecutive and end at res5")
    require(not neck.get("add_extra_convs", False),
            f"{source}: FPN add_extra_convs={neck.get('add_extra_convs')!r} is not supported "
            "(Detectron2's LastLevelMaxPool is the add_extra_convs=False case)")
    require(int(neck.get("num_outs", 5)) == len(stages) + 1,
            f"{source}: FPN num_outs={neck.get('num_outs')} with {len(stages)} inputs; "
            f"solo_d2 builds {len(stages) + 1} levels (one max-pooled extra level)")
    fpn_ch = int(neck.get("out_channels", 256))
    require(int(head.get("in_channels", fpn_ch)) == fpn_ch,
            f"{source}: mask_head.in_channels {head.get('in_channels')} != FPN out {fpn_ch}")
    fpn_norm = norm_name(neck.get("norm_cfg"), "neck.norm_cfg")
    levels = [f"p{s}" for s in stages] + [f"p{stages[-1] + 1}"]

    test_cfg = model.get("test_cfg") or mm.get("test_cfg") or {}
    solo = _head_settings(head, test_cfg)
    require(len(solo["NUM_GRIDS"]) == len(levels),
            f"{source}: {len(solo['NUM_GRIDS'])} grids for {len(levels)} FPN levels")
    if "MASK_FEAT.END_LEVEL" in solo:
        require(solo["MASK_FEAT.END_LEVEL"] < len(levels),
                f"{source}: mask_feature_head.end_level={solo['MASK_FEAT.END_LEVEL']} but "
                f"the head reads {len(levels)} levels")
    mean, std, fmt = _normalisation(mm)

    cfg = get_cfg()
    add_solo_config(cfg)
    cfg.MODEL.META_ARCHITECTURE = "SOLO"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.PIXEL_MEAN = mean
    cfg.MODEL.PIXEL_STD = std
    cfg.INPUT.FORMAT = fmt
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    frozen = int(bb.get("frozen_stages", -1))
    cfg.MODEL.BACKBONE.FREEZE_AT = max(frozen + 1, 0)
    r = cfg.MODEL.RESNETS
    r.DEPTH = depth
    r.OUT_FEATURES = [f"res{s}" for s in stages]
    r.STRIDE_IN_1X1 = style == "caffe"
    r.NORM = res_norm
    r.NUM_GROUPS = num_groups
    r.WIDTH_PER_GROUP = width_per_group
    r.STEM_OUT_CHANNELS = 64
    r.RES2_OUT_CHANNELS = 64 if depth in (18, 34) else 256
    r.RES5_DILATION = 1
    r.DEFORM_ON_PER_STAGE = deform["on"]
    r.DEFORM_MODULATED = deform["modulated"]
    r.DEFORM_NUM_GROUPS = deform["groups"]
    cfg.MODEL.FPN.IN_FEATURES = [f"res{s}" for s in stages]
    cfg.MODEL.FPN.OUT_CHANNELS = fpn_ch
    cfg.MODEL.FPN.NORM = fpn_norm
    cfg.MODEL.FPN.FUSE_TYPE = "sum"
    cfg.MODEL.SOLO.IN_FEATURES = levels
    for key, value in solo.items():
        node = cfg.MODEL.SOLO
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    scale = _test_scale(mm)
    if scale is not None:
        cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = scale
    else:
        warnings.warn("no test Resize in the mmdet config; keeping INPUT.*_SIZE_TEST defaults")
    cfg.INPUT.RESIZE_BACKEND = "cv2"
    cfg.INPUT.MASK_FORMAT = "polygon"
    if solo["NUM_CLASSES"] == 80:
        cfg.DATASETS.TRAIN = ("coco_2017_train",)
        cfg.DATASETS.TEST = ("coco_2017_val",)
    else:
        cfg.DATASETS.TRAIN = ()
        cfg.DATASETS.TEST = ()
    return cfg, stages

