"""The benchmark's one error type: a setting it cannot measure, said in words."""


class BenchmarkError(RuntimeError):
    """A benchmark setting that cannot be measured (unknown head or regime, mmdet missing,
    weights that do not fit). ``tools/benchmark.py`` exits with its message."""
