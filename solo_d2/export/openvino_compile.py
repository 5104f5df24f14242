"""OpenVINO models compiled without leaving the calling thread a dangling signal stack.

Compiling a model, OpenVINO's CPU plugin (2026.4) gives the calling thread an alternate signal
stack of its own (``sigaltstack``) and, when the compiled model is released, reinstates the
stack it replaced. Two compiled models released in the order they were made, not the reverse,
leave the thread's signal stack pointing at freed memory; CPython runs its signal handlers on
that stack (SA_ONSTACK), so the next signal handled in Python on that thread (a DataLoader's
SIGCHLD, a preemption signal, Ctrl-C) ends the process in a segmentation fault without a
traceback. :func:`compile_model` puts the thread's own signal stack back as soon as the model
is compiled, so that every release reinstates a stack that is still there.
"""
import contextlib
import ctypes
import sys
from typing import Any, Dict, Iterator, Optional

__all__ = ["compile_model", "kept_signal_stack", "signal_stack"]

_SS_DISABLE = 2


class _StackT(ctypes.Structure):
    """Linux's ``stack_t``."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                ("ss_size", ctypes.c_size_t)]


def _libc() -> Optional[ctypes.CDLL]:
    return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def signal_stack() -> Optional[tuple]:
    """The calling thread's alternate signal stack as (address, flags, size); None where it
    cannot be read (not Linux)."""
    libc = _libc()
    stack = _StackT()
    if libc is None or libc.sigaltstack(None, ctypes.byref(stack)) != 0:
        return None
    return stack.ss_sp or 0, stack.ss_flags, stack.ss_size


@contextlib.contextmanager
def kept_signal_stack() -> Iterator[None]:
    """The calling thread's alternate signal stack as it was on entry, whatever the block
    installs (on Linux; elsewhere nothing is done)."""
    libc = _libc()
    saved = _StackT()
    if libc is None or libc.sigaltstack(None, ctypes.byref(saved)) != 0:
        yield
        return
    try:
        yield
    finally:
        saved.ss_flags &= _SS_DISABLE  # SS_ONSTACK is a state, not a setting
        libc.sigaltstack(ctypes.byref(saved), None)


def compile_model(core: Any, model: Any, settings: Dict[str, object]) -> Any:
    """``core.compile_model(model, "CPU", settings)`` that leaves this thread's signal stack
    as it was (see the module's docstring)."""
    with kept_signal_stack():
        return core.compile_model(model, "CPU", settings)
