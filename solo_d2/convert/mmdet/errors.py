"""The converter's one error type: every refusal of an mmdet checkpoint or config is an
:class:`MMDetConversionError` whose message names the bad value and what was expected."""

__all__ = ["MMDetConversionError", "require"]


class MMDetConversionError(ValueError):
    """A checkpoint or config that this converter cannot (or refuses to) convert."""


def require(cond: bool, msg: str) -> None:
    """Raise :class:`MMDetConversionError` with ``msg`` unless ``cond``."""
    if not cond:
        raise MMDetConversionError(msg)
