"""Weights by name: the one table of what every shipped COCO config was published with.

* ``solo_d2://<config>`` (``solo_d2://SOLOv2_R50_3x``): mmdet's published COCO weights of the
  mmdet config that a shipped config reproduces, from mmdet 3.3.0's
  ``configs/solo/metafile.yml`` and ``configs/solov2/metafile.yml``.
* ``torchvision://<resnet>`` (``torchvision://resnet50``): torchvision's ImageNet weights, the
  URL read from torchvision itself (its ``IMAGENET1K_V1`` weights, as mmengine reads them).
* ``open-mmlab://resnext101_64x4d``: the ImageNet ResNeXt that mmdet's X-101 configs start from.

:data:`COCO_MODELS` is read by the weights handlers (:mod:`.path_handlers`),
:mod:`solo_d2.model_zoo` (``get_checkpoint_url``) and the tests that hold it to mmdet's
metafiles and configs; ``docs/MODEL_ZOO.md`` shows it.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

__all__ = [
    "PublishedModel",
    "COCO_MODELS",
    "NAME_SCHEMES",
    "WeightsNameError",
    "resolve_weights_name",
    "open_mmlab_names",
    "thing_classes_of_url",
]

NAME_SCHEMES = ("solo_d2://", "torchvision://", "open-mmlab://")


class WeightsNameError(ValueError):
    """A weights name that no table knows (or a config that has no published weights)."""


@dataclass(frozen=True)
class PublishedModel:
    """One shipped COCO config and what mmdet published for the model it reproduces."""

    config: str  # shipped config, relative to configs/: "SOLOv2_R50_3x.yaml"
    mmdet_config: Optional[str]  # under mmdet/.mim/configs/; None: mmdet has no such config
    url: Optional[str]  # mmdet's published COCO checkpoint; None: none was published
    mask_ap: Optional[float]  # mmdet's published COCO val2017 mask AP of those weights
    dataset: str = "coco_2017_val"  # whose class names the weights predict (Detectron2 name)

    @property
    def name(self) -> str:
        """The short name, ``solo_d2://<config without .yaml>``."""
        return "solo_d2://" + self.config[: -len(".yaml")]


_MMDET = "https://download.openmmlab.com/mmdetection/v2.0/"

COCO_MODELS: Dict[str, PublishedModel] = {m.config: m for m in (
    PublishedModel("SOLO_R50_1x.yaml", "solo/solo_r50_fpn_1x_coco.py", _MMDET
                   + "solo/solo_r50_fpn_1x_coco/solo_r50_fpn_1x_coco_20210821_035055-2290a6b8.pth",
                   33.1),
    PublishedModel("SOLO_R50_3x.yaml", "solo/solo_r50_fpn_3x_coco.py", _MMDET
                   + "solo/solo_r50_fpn_3x_coco/solo_r50_fpn_3x_coco_20210901_012353-11d224d7.pth",
                   35.9),
    PublishedModel("SOLO_R101_3x.yaml", None, None, None),
    PublishedModel("Decoupled_SOLO_R50_1x.yaml", "solo/decoupled-solo_r50_fpn_1x_coco.py", _MMDET
                   + "solo/decoupled_solo_r50_fpn_1x_coco/"
                   "decoupled_solo_r50_fpn_1x_coco_20210820_233348-6337c589.pth", 33.9),
    PublishedModel("Decoupled_SOLO_R50_3x.yaml", "solo/decoupled-solo_r50_fpn_3x_coco.py", _MMDET
                   + "solo/decoupled_solo_r50_fpn_3x_coco/"
                   "decoupled_solo_r50_fpn_3x_coco_20210821_042504-7b3301ec.pth", 36.7),
    PublishedModel("Decoupled_SOLO_Light_R50_3x.yaml",
                   "solo/decoupled-solo-light_r50_fpn_3x_coco.py",
                   _MMDET + "solo/decoupled_solo_light_r50_fpn_3x_coco/"
                   "decoupled_solo_light_r50_fpn_3x_coco_20210906_142703-e70e226f.pth", 32.9),
    PublishedModel("SOLOv2_R50_1x.yaml", "solov2/solov2_r50_fpn_1x_coco.py", _MMDET
                   + "solov2/solov2_r50_fpn_1x_coco/"
                   "solov2_r50_fpn_1x_coco_20220512_125858-a357fa23.pth",
                   34.8),
    PublishedModel("SOLOv2_R50_3x.yaml", "solov2/solov2_r50_fpn_ms-3x_coco.py", _MMDET
                   + "solov2/solov2_r50_fpn_3x_coco/"
                   "solov2_r50_fpn_3x_coco_20220512_125856-fed092d4.pth",
                   37.5),
    PublishedModel("SOLOv2_R101_3x.yaml", "solov2/solov2_r101_fpn_ms-3x_coco.py", None, None),
    # Panoptic SOLOv2 (paper section 3.2): never published, by the authors or mmdet; start one
    # from solo_d2://SOLOv2_R50_3x (docs/PANOPTIC.md)
    PublishedModel("SOLOv2_Panoptic_R50_1x.yaml", None, None, None),
    PublishedModel("SOLOv2_Panoptic_R50_3x.yaml", None, None, None),
    PublishedModel("SOLOv2_R101_DCN_3x.yaml", "solov2/solov2_r101-dcn_fpn_ms-3x_coco.py", _MMDET
                   + "solov2/solov2_r101_dcn_fpn_3x_coco/"
                   "solov2_r101_dcn_fpn_3x_coco_20220513_214734-16c966cb.pth", 41.2),
    PublishedModel("SOLOv2_X101_DCN_3x.yaml", "solov2/solov2_x101-dcn_fpn_ms-3x_coco.py", _MMDET
                   + "solov2/solov2_x101_dcn_fpn_3x_coco/"
                   "solov2_x101_dcn_fpn_3x_coco_20220513_214337-aef41095.pth", 42.4),
    PublishedModel("SOLOv2_Light_R18_3x.yaml", "solov2/solov2-light_r18_fpn_ms-3x_coco.py", _MMDET
                   + "solov2/solov2_light_r18_fpn_3x_coco/"
                   "solov2_light_r18_fpn_3x_coco_20220511_083717-75fa355b.pth", 29.7),
    PublishedModel("SOLOv2_Light_R34_3x.yaml", "solov2/solov2-light_r34_fpn_ms-3x_coco.py", None,
                   None),
    PublishedModel("SOLOv2_Light_R50_3x.yaml", "solov2/solov2-light_r50_fpn_ms-3x_coco.py", _MMDET
                   + "solov2/solov2_light_r50_fpn_3x_coco/"
                   "solov2_light_r50_fpn_3x_coco_20220512_165256-c93a6074.pth", 33.7),
    PublishedModel("SOLOv2_Light_R50_DCN_3x.yaml", "solov2/solov2-light_r50-dcn_fpn_ms-3x_coco.py",
                   None, None),
)}

# mmdet's open-mmlab:// names that shipped configs start from (mmengine's hub/openmmlab.json)
_OPEN_MMLAB: Dict[str, str] = {
    "resnext101_64x4d":
        "https://download.openmmlab.com/pretrain/third_party/resnext101_64x4d-ee2c6f71.pth",
}

# torchvision ImageNet models whose weights convert onto Detectron2's ResNet
_TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def _torchvision_url(name: str) -> str:
    from torchvision.models import get_model_weights

    if name not in _TORCHVISION_RESNETS:
        raise WeightsNameError(
            f"torchvision://{name}: not a torchvision ResNet solo_d2 converts; known: "
            f"{', '.join('torchvision://' + n for n in _TORCHVISION_RESNETS)}"
        )
    return get_model_weights(name).IMAGENET1K_V1.url


def resolve_weights_name(name: str) -> str:
    """The URL a weights name stands for.

    ``solo_d2://SOLOv2_R50_3x`` -> mmdet's published checkpoint;
    ``torchvision://resnet50`` -> torchvision's ImageNet weights;
    ``open-mmlab://resnext101_64x4d`` -> mmdet's ImageNet ResNeXt.

    Raises:
        WeightsNameError: an unknown scheme or name, or a config without published weights,
            naming the known ones.
    """
    scheme, sep, rest = name.partition("://")
    if not sep or scheme + "://" not in NAME_SCHEMES:
        raise WeightsNameError(f"{name!r}: not a weights name ({', '.join(NAME_SCHEMES)})")
    if scheme == "torchvision":
        return _torchvision_url(rest)
    if scheme == "open-mmlab":
        if rest not in _OPEN_MMLAB:
            raise WeightsNameError(f"{name!r}: unknown; known: "
                                   f"{', '.join('open-mmlab://' + n for n in _OPEN_MMLAB)}")
        return _OPEN_MMLAB[rest]
    named = [m for m in COCO_MODELS.values() if m.url]
    model = COCO_MODELS.get(rest + ".yaml")
    if model is None or model.url is None:
        why = "has no published weights" if model is not None else "is unknown"
        raise WeightsNameError(f"{name!r} {why}; published: "
                               f"{', '.join(m.name for m in named)}")
    return model.url


def open_mmlab_names() -> Dict[str, str]:
    """``{open-mmlab name: URL}`` of the names :func:`resolve_weights_name` knows."""
    return dict(_OPEN_MMLAB)


def thing_classes_of_url(url: str) -> Optional[List[str]]:
    """Class names of the dataset a published checkpoint was trained on (Detectron2's builtin
    metadata of the table's ``dataset``: COCO's 80 names); None for a URL not in the table."""
    for m in COCO_MODELS.values():
        if m.url == url:
            from detectron2.data import MetadataCatalog

            return list(MetadataCatalog.get(m.dataset).thing_classes)
    return None
