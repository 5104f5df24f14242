"""The yaml config keys of solo_d2: every ``MODEL.SOLO.*`` default with its meaning
(``add_solo_config``) and the checks that name a bad value (``validate_solo_config``)."""
from .checks import validate_solo_config
from .defaults import CLUSTER_DEFAULTS, add_solo_config

__all__ = ["CLUSTER_DEFAULTS", "add_solo_config", "validate_solo_config"]
