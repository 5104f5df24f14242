"""ONNX export of SOLO-family models with their whole post-processing, at fp32, bf16 or int8,
and a predictor that runs it in ONNX Runtime or OpenVINO (docs/DEPLOYMENT.md)."""
from .compare import ParityReport, check_against_pytorch, compare_outputs, pytorch_outputs
from .graph import SOLOExportModule, check_exportable
from .onnx_export import DEFAULT_OPSET, export_from_config, export_onnx
from .onnx_predictor import ONNXPredictor

__all__ = [
    "SOLOExportModule",
    "check_exportable",
    "export_onnx",
    "export_from_config",
    "DEFAULT_OPSET",
    "ONNXPredictor",
    "ParityReport",
    "compare_outputs",
    "pytorch_outputs",
    "check_against_pytorch",
]
