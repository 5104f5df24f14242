"""LazyConfigs saved before a class moved to another room still load.

``LazyConfig.save`` writes each ``_target_`` as the shortest module path that has the class
(``solo_d2.modeling.SOLOV2Head`` while the heads were part of the modeling room), and
``instantiate`` resolves it with ``locate``: the package a class was exported from before it
moved must keep exporting it.
"""
import pytest
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig, instantiate
from detectron2.utils.registry import locate
from omegaconf import OmegaConf

from solo_d2.evaluation import SOLOCOCOEvaluator
from solo_d2.heads import DecoupledSOLOHead, DecoupledSOLOLightHead, SOLOHead, SOLOV2Head
from solo_d2.layers.postprocess import InferenceSettings

# what LazyConfig.save wrote while the heads and InferenceSettings were in the modeling room
# and the evaluator in the engine room -> the class
SAVED_BEFORE = {
    "solo_d2.modeling.SOLOHead": SOLOHead,
    "solo_d2.modeling.DecoupledSOLOHead": DecoupledSOLOHead,
    "solo_d2.modeling.DecoupledSOLOLightHead": DecoupledSOLOLightHead,
    "solo_d2.modeling.SOLOV2Head": SOLOV2Head,
    "solo_d2.modeling.InferenceSettings": InferenceSettings,
    "solo_d2.engine.SOLOCOCOEvaluator": SOLOCOCOEvaluator,
}


@pytest.mark.parametrize("target", sorted(SAVED_BEFORE))
def test_a_target_saved_before_the_move_is_located(target):
    assert locate(target) is SAVED_BEFORE[target]


def test_a_config_saved_before_the_move_instantiates(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "test: {_target_: solo_d2.modeling.InferenceSettings, score_thresh: 0.3, max_per_img: 7}\n"
    )
    settings = instantiate(LazyConfig.load(str(path)).test)
    assert isinstance(settings, InferenceSettings)
    assert (settings.score_thresh, settings.max_per_img) == (0.3, 7)


def test_save_writes_where_the_classes_are_now(tmp_path):
    path = tmp_path / "saved.yaml"
    LazyConfig.save(OmegaConf.create({"head": L(SOLOV2Head)(), "test": L(InferenceSettings)()}), str(path))
    saved = LazyConfig.load(str(path))
    assert saved.head._target_ == "solo_d2.heads.SOLOV2Head"
    assert saved.test._target_ == "solo_d2.layers.InferenceSettings"
    assert locate(saved.head._target_) is SOLOV2Head
