"""The runtimes an exported SOLO graph runs in, behind one interface.

``open_backend(path, backend, threads)`` returns a :class:`Backend`: ``run(image)`` takes the
graph's input, one (C, H, W) image, and returns the graph's outputs by name (masks (K, H, W)
bool, scores (K,) float32, classes (K,) int64, boxes (K, 4) float32), whichever runtime runs
it. Both read the same file: the runtime is a choice at load time, not a second export.

* ``onnxruntime``: ONNX Runtime's CPU provider. fp32 and int8 files; a bf16 file runs in fp32
  (ONNX Runtime has no bf16 CPU kernels), with a warning.
* ``openvino``: OpenVINO's CPU plugin, reading the ONNX file directly. Its inference-precision
  hint is set from the file's precision: f32 for fp32 and int8 files (OpenVINO's own default
  on CPUs with bf16 units is bf16, which would silently change an fp32 file's numbers), bf16
  for bf16 files. Latency mode (one stream).

Default runtime (:func:`default_backend`): OpenVINO for bf16 and int8 files when it is
installed (ONNX Runtime has no bf16 kernels and its int8 convolutions are barely faster than
its fp32 ones on x86, docs/DEPLOYMENT.md), ONNX Runtime for fp32 files (the reference runtime
of the export's tests; both run fp32 at about the same speed).

Threads: every core this process may run on by default (:func:`default_threads`).
"""
import importlib.util
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from .graph import OUTPUT_NAMES
from .openvino_compile import compile_model
from .precision import PrecisionError, file_precision, inspect_file

__all__ = [
    "BACKENDS",
    "INSTALL_HINTS",
    "Backend",
    "ONNXRuntimeBackend",
    "OpenVINOBackend",
    "installed_backends",
    "OPENVINO_DYNAMIC_CONV",
    "default_backend",
    "default_threads",
    "open_backend",
]

logger = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "openvino")
#: the one-line hint for a runtime that is not installed
INSTALL_HINTS = {
    "onnxruntime": "ONNX Runtime is not installed: pip install onnxruntime",
    "openvino": "OpenVINO is not installed: pip install openvino (or pip install solo_d2[deploy])",
}
_NUMPY_TYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}


def installed_backends() -> List[str]:
    """The runtimes of :data:`BACKENDS` that are importable, in that order."""
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


#: why OpenVINO cannot run a graph with convolutions whose weights it computes
OPENVINO_DYNAMIC_CONV = (
    "OpenVINO cannot run this graph: its convolution(s) {names} take weights the graph "
    "computes (Decoupled SOLO's mask projections of the candidate rows), which OpenVINO's CPU "
    "plugin does not run; use ONNX Runtime")


def default_backend(precision: str, dynamic_convs: Sequence[str] = ()) -> str:
    """The fastest installed runtime for a file of ``precision`` (module docstring) that can
    run it (OpenVINO cannot run ``dynamic_convs``, :func:`~.precision.inspect_file`); a
    PrecisionError with the install hint when none is installed."""
    installed = installed_backends()
    order = ["onnxruntime", "openvino"] if precision == "fp32" else ["openvino", "onnxruntime"]
    if dynamic_convs:
        order = ["onnxruntime"]
    for name in order:
        if name in installed:
            if precision != "fp32" and name == "onnxruntime":
                why = ("OpenVINO cannot run this graph (Decoupled SOLO)" if dynamic_convs else
                       INSTALL_HINTS["openvino"])
                logger.warning(f"{precision} files run fastest in OpenVINO; {why}. "
                               "Running in ONNX Runtime")
            return name
    raise PrecisionError(f"no runtime for the exported graph: {INSTALL_HINTS['onnxruntime']} "
                         "(and/or openvino)")


def default_threads() -> int:
    """Every core this process may run on (its CPU affinity), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Backend:
    """One exported graph loaded in one runtime.

    Attributes:
        name: the runtime ("onnxruntime" or "openvino").
        precision: the file's precision ("fp32", "bf16", "int8").
        runs_at: the precision it actually runs at (a bf16 file runs at fp32 in ONNX Runtime).
        threads: the intra-op threads the runtime uses.
        metadata: the file's metadata (input_format, thing_classes, solo_d2_precision, ...).
        input_dtype: numpy dtype of the graph's input image (uint8, or float32 for a graph
            traced with a float image).
    """

    name = ""

    def __init__(self, path: str, precision: str, threads: int, metadata: Dict[str, str]):
        self.path = path
        self.precision = precision
        self.runs_at = precision
        self.threads = threads
        self.metadata = metadata
        self.input_dtype = np.uint8

    def run(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """The graph on one (C, H, W) image: its outputs by name."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{self.name} ({self.precision} file run at {self.runs_at}, "
                f"{self.threads} threads)")


class ONNXRuntimeBackend(Backend):
    """ONNX Runtime's CPU provider (``session``: the ``InferenceSession``)."""

    name = "onnxruntime"

    def __init__(self, path: str, precision: str, threads: int, metadata: Dict[str, str],
                 providers=("CPUExecutionProvider",)):
        super().__init__(path, precision, threads, metadata)
        import onnxruntime as ort

        if precision == "bf16":
            logger.warning(f"{path}: a bf16 file runs at fp32 in ONNX Runtime (it has no bf16 "
                           "CPU kernels); --backend openvino runs it in bf16")
            self.runs_at = "fp32"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=list(providers))
        image_input = self.session.get_inputs()[0]
        if image_input.type not in _NUMPY_TYPES:
            raise ValueError(f"{path}: the graph's input is {image_input.type}; a solo_d2 graph "
                             "takes a uint8 or float image")
        self.input_name = image_input.name
        self.input_dtype = _NUMPY_TYPES[image_input.type]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        outputs = self.session.run(None, {self.input_name: image.astype(self.input_dtype)})
        return dict(zip(self.output_names, outputs))


class OpenVINOBackend(Backend):
    """OpenVINO's CPU plugin on the ONNX file (``compiled``: the compiled model)."""

    name = "openvino"

    def __init__(self, path: str, precision: str, threads: int, metadata: Dict[str, str],
                 config: Optional[Dict[str, object]] = None):
        super().__init__(path, precision, threads, metadata)
        import openvino as ov

        core = ov.Core()
        model = core.read_model(path)
        image_input = model.inputs[0]
        types = {ov.Type.u8: np.uint8, ov.Type.f32: np.float32}
        if image_input.get_element_type() not in types:
            raise ValueError(f"{path}: the graph's input is {image_input.get_element_type()}; a "
                             "solo_d2 graph takes a uint8 or float image")
        self.input_dtype = types[image_input.get_element_type()]
        settings = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
        }
        settings.update(config or {})
        self.compiled = compile_model(core, model, settings)
        self.request = self.compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]

    def run(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        self.request.infer({0: np.ascontiguousarray(image, dtype=self.input_dtype)})
        # copies: the request's output buffers are reused by the next run
        return {name: np.array(self.request.get_output_tensor(i).data, copy=True)
                for i, name in enumerate(self.output_names)}


def open_backend(
    path: str,
    backend: Optional[str] = None,
    threads: Optional[int] = None,
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    openvino_config: Optional[Dict[str, object]] = None,
) -> Backend:
    """Load the exported graph at ``path`` in ``backend`` (default: :func:`default_backend` of
    the file's precision) with ``threads`` intra-op threads (default: every core).

    ``providers``: ONNX Runtime's execution providers; ``openvino_config``: OpenVINO
    properties that replace or add to the defaults. An unknown or uninstalled backend, or a
    bad thread count, is a PrecisionError / ValueError with a one-line message.
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is unknown; expected one of {BACKENDS}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    metadata, dynamic_convs = inspect_file(path)
    precision = file_precision(metadata)
    if backend is None:
        backend = default_backend(precision, dynamic_convs)
    elif backend not in installed_backends():
        raise PrecisionError(INSTALL_HINTS[backend])
    if backend == "openvino" and dynamic_convs:
        raise PrecisionError(OPENVINO_DYNAMIC_CONV.format(names=dynamic_convs[:2]))
    threads = threads or default_threads()
    if backend == "onnxruntime":
        runner: Backend = ONNXRuntimeBackend(path, precision, threads, metadata, providers)
    else:
        runner = OpenVINOBackend(path, precision, threads, metadata, openvino_config)
    missing = [n for n in OUTPUT_NAMES if n not in runner.output_names]
    if missing:
        raise ValueError(f"{path}: the graph has no output(s) {missing}; a solo_d2 graph has "
                         f"{list(OUTPUT_NAMES)} (tools/export_model.py)")
    return runner
