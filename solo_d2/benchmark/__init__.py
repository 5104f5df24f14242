"""Speed, memory and output measurement of solo_d2 models in PyTorch, against mmdet 3.3.0's
SOLO on the same weights and input, behind tools/benchmark.py and tools/benchmark_training.py.

One job per module:

* :mod:`.timing`: phase clock with device synchronisation, autocast, alternating runs
  (median phase times), what autograd keeps for backward.
* :mod:`.memory`: RSS / CUDA high-water marks around a phase, the fresh worker process.
* :mod:`.inputs`: the synthetic image and ground-truth instances.
* :mod:`.models`: ours, mmdet's reference (config per head from ``MMDET_HEADS``), the pair
  with identical weights, "alt" (ours with config overrides).
* :mod:`.steps`: one timed inference / training step of either model, in the same phases.
* :mod:`.calibration`: random weights made realistic (candidate counts, masks), per head.
* :mod:`.compare`: output comparison of two models.
* :mod:`.measure`: the measurements (inference, training, memory), each a report entry and
  its text.
* :mod:`.report`: the machine description, the printed tables, progress lines.
"""
from .errors import BenchmarkError

__all__ = ["BenchmarkError"]
