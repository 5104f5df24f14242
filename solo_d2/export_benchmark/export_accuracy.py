"""COCO AP of exported models (any precision, any runtime) beside the PyTorch model they were
exported from, through Detectron2's COCOEvaluator on a registered dataset, with the mask
agreement of each against PyTorch fp32 (:class:`.agreement.MaskAgreement`).

All models see the same batches of the config's test loader (images read and resized once);
an exported model gets the mapper's resized image, and its masks are brought back to the
original size as :class:`~solo_d2.export.ONNXPredictor` brings them.
"""
import logging
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn

from solo_d2.engine import SOLOTrainer
from solo_d2.engine.configs import AnyConfig, dataset_names
from solo_d2.evaluation import SOLOCOCOEvaluator
from solo_d2.export.backends import Backend
from solo_d2.export.onnx_predictor import outputs_to_instances

from ..benchmark.errors import BenchmarkError
from .agreement import MaskAgreement

__all__ = ["REFERENCE", "ExportedModel", "evaluate_side_by_side", "format_accuracy_table"]

logger = logging.getLogger(__name__)

#: the name of the reference model (PyTorch, fp32) in the results
REFERENCE = "pytorch fp32"

Runner = Callable[[List[Dict[str, Any]]], List[Dict[str, Any]]]


class ExportedModel(nn.Module):
    """An exported graph in a runtime, called as a Detectron2 model in eval mode:
    ``model(batched_inputs) -> [{"instances": Instances}]`` at each input's height and width."""

    def __init__(self, backend: Backend):
        super().__init__()
        self.backend = backend

    def forward(self, batched_inputs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        results = []
        for x in batched_inputs:
            image = x["image"].numpy()  # (C, H, W), INPUT.FORMAT, resized by the test mapper
            h, w = x.get("height", image.shape[1]), x.get("width", image.shape[2])
            results.append({"instances": outputs_to_instances(self.backend.run(image), h, w)})
        return results


def evaluate_side_by_side(
    cfg: AnyConfig,
    models: Dict[str, nn.Module],
    dataset: Optional[str] = None,
    agreement_threshold: float = 0.3,
) -> Dict[str, Dict[str, Any]]:
    """COCO results of each of ``models`` (name -> Detectron2-style model; :data:`REFERENCE`
    among them) on ``dataset`` (default: the config's first test dataset).

    Returns per name: ``"bbox"`` and ``"segm"`` (COCOEvaluator's results), ``"seconds_per_image"``,
    and for every model but the reference ``"delta_mask_ap"`` (its segm AP minus the
    reference's) and ``"agreement"`` (:meth:`MaskAgreement.result`).
    """
    if REFERENCE not in models:
        raise BenchmarkError(f"evaluate_side_by_side needs the reference {REFERENCE!r}")
    if dataset is None:
        tests = dataset_names(cfg, "test")
        if not tests:
            raise BenchmarkError("the config has no test dataset; pass --dataset NAME")
        dataset = tests[0]
    loader = SOLOTrainer.build_test_loader(cfg, dataset)
    with tempfile.TemporaryDirectory() as tmp:
        evaluators = {name: SOLOCOCOEvaluator(dataset, output_dir=tmp) for name in models}
        agreement = {name: MaskAgreement(agreement_threshold) for name in models
                     if name != REFERENCE}
        seconds = dict.fromkeys(models, 0.0)
        for e in evaluators.values():
            e.reset()
        for m in models.values():
            m.eval()
        images = 0
        with torch.no_grad():
            for inputs in loader:
                outputs = {}
                for name, model in models.items():
                    start = time.perf_counter()
                    outputs[name] = model(inputs)
                    seconds[name] += time.perf_counter() - start
                    evaluators[name].process(inputs, outputs[name])
                for name, acc in agreement.items():
                    for ref, out in zip(outputs[REFERENCE], outputs[name]):
                        acc.add(ref["instances"], out["instances"])
                images += len(inputs)
        results = {}
        for name, evaluator in evaluators.items():
            logger.info(f"COCO evaluation of {name}")
            res = dict(evaluator.evaluate() or {})
            res["seconds_per_image"] = seconds[name] / max(images, 1)
            results[name] = res
    ref_ap = results[REFERENCE]["segm"]["AP"]
    for name, acc in agreement.items():
        results[name]["delta_mask_ap"] = results[name]["segm"]["AP"] - ref_ap
        results[name]["agreement"] = acc.result()
    results["_meta"] = {"dataset": dataset, "images": images, "reference": REFERENCE}
    return results


def format_accuracy_table(results: Dict[str, Dict[str, Any]]) -> str:
    """The results of :func:`evaluate_side_by_side` as a markdown table."""
    meta = results["_meta"]
    thr = next((r["agreement"]["score_thresh"] for k, r in results.items()
                if k != "_meta" and "agreement" in r), 0.3)
    lines = [
        f"### COCO AP on {meta['dataset']} ({meta['images']} images), against {REFERENCE}",
        "",
        "| model | mask AP | delta mask AP | box AP | matched | identical | mean mask IoU "
        "| mean score diff | s / image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if name == "_meta":
            continue
        a = r.get("agreement")
        agree = (f"{100 * a['matched']:.1f} % | {100 * a['identical']:.1f} % | "
                 f"{a['mean_iou']:.4f} | {a['mean_score_diff']:.4f}") if a else "- | - | - | -"
        delta = f"{r['delta_mask_ap']:+.2f}" if "delta_mask_ap" in r else "(reference)"
        lines.append(f"| {name} | {r['segm']['AP']:.2f} | {delta} | {r['bbox']['AP']:.2f} | "
                     f"{agree} | {r['seconds_per_image']:.3f} |")
    lines += ["", f"matched / identical: share of the reference's instances scoring >= {thr} "
              "found again (same class, mask IoU >= 0.5) / found with mask IoU >= 0.99 and a "
              "score within 0.01.", ""]
    return "\n".join(lines)
