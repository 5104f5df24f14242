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


def _read() -> Optional[tuple]:
    """(libc, this thread's ``stack_t``), or None where it cannot be read (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    stack = _StackT()
    return None if libc.sigaltstack(None, ctypes.byref(stack)) != 0 else (libc, stack)


def signal_stack() -> Optional[tuple]:
    """The calling thread's alternate signal stack as (address, flags, size); None where it
    cannot be read (not Linux)."""
    read = _read()
    if read is None:
        return None
    stack = read[1]
    return stack.ss_sp or 0, stack.ss_flags, stack.ss_size


@contextlib.contextmanager
def kept_signal_stack() -> Iterator[None]:
    """The calling thread's alternate signal stack as it was on entry, whatever the block
    installs (on Linux; elsewhere nothing is done)."""
    read = _read()
    try:
        yield
    finally:
        if read is not None:
            libc, saved = read
            saved.ss_flags &= _SS_DISABLE  # SS_ONSTACK is a state, not a setting
            libc.sigaltstack(ctypes.byref(saved), None)


def compile_model(core: Any, model: Any, settings: Dict[str, object]) -> Any:
    """``core.compile_model(model, "CPU", settings)`` that leaves this thread's signal stack
    as it was (see the module's docstring)."""
    with kept_signal_stack():
        return core.compile_model(model, "CPU", settings)
