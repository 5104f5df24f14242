"""LazyConfig support beyond loading: a yaml config translated into the LazyConfig that builds
the same model and training, and a LazyConfig written as a Python config file.

:func:`yaml_to_lazy` translates; :func:`lazy_config_source` writes (as
``tools/convert_mmdet_checkpoint.py --config-out X.py`` does). Loading is
``solo_d2.engine.configs``.
"""
from .from_yaml import lazy_call_of, yaml_to_lazy
from .python_file import lazy_config_source, save_lazy_config

__all__ = ["lazy_call_of", "yaml_to_lazy", "lazy_config_source", "save_lazy_config"]
