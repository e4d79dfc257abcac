"""The CPU settings a coding run shares, with or without torch installed: how many threads it
uses, and denormals flushed to zero.

The codec of online bundles imports no torch (`pip install .` without extras has none), yet it
must run exactly as it did beside torch: its threads follow torch's setting where torch is loaded
(the bench and the toolkit set it), and denormals are flushed as `torch.set_flush_denormal(True)`
flushes them (SSE's FTZ and DAZ bits; AArch64's FZ bit), set here through the C library's
floating-point environment. New threads inherit the setting from the thread that starts them.
"""

import os
import platform
import sys

_threads: int | None = None  # set_threads' value; None: torch's setting where loaded, else the CPUs


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def get_threads() -> int:
    """Threads a coding run uses when none is given: the last `set_threads`, else torch's setting
    where torch is loaded, else every CPU this process may run on."""
    if _threads is not None:
        return _threads
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    return available_cpus()


def set_threads(count: int | None) -> None:
    """Threads of the coding runs that follow (torch's too, where torch is loaded); None: back to
    the default (torch's setting where loaded, else every CPU)."""
    global _threads
    _threads = None if count is None else int(count)
    torch = sys.modules.get("torch")
    if torch is not None and _threads is not None:
        torch.set_num_threads(_threads)


def threads_setting() -> int | None:
    """What `set_threads` was last given (None: the default), so a caller can put it back."""
    return _threads


# fenv_t of glibc: where the flush-to-zero bits lie (byte offset of a 32-bit field, bits to set)
_FENV = {"x86_64": (32, 28, 0x8040), "amd64": (32, 28, 0x8040),  # MXCSR: FTZ (bit 15) and DAZ (bit 6)
         "aarch64": (8, 0, 1 << 24), "arm64": (8, 0, 1 << 24)}  # FPCR: FZ (bit 24)


def _flush_by_libc() -> bool:
    import ctypes
    import ctypes.util
    import struct

    layout = _FENV.get(platform.machine().lower())
    if layout is None or not sys.platform.startswith("linux"):
        return False
    size, offset, bits = layout
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        env = ctypes.create_string_buffer(size)
        if libm.fegetenv(env) != 0:
            return False
        raw = bytearray(env.raw)
        struct.pack_into("<I", raw, offset, struct.unpack_from("<I", raw, offset)[0] | bits)
        return libm.fesetenv(ctypes.create_string_buffer(bytes(raw), size)) == 0
    except (OSError, AttributeError):
        return False


def flush_denormals() -> None:
    """Flush denormals to zero on this thread, as `torch.set_flush_denormal(True)` does (part of the
    numeric modes: encoder and decoder must agree). Without torch on a platform the C library route
    does not know, nothing changes."""
    if "torch" in sys.modules or not _flush_by_libc():
        try:
            import torch
        except ImportError:
            return
        torch.set_flush_denormal(True)


def release_memory() -> None:
    """Hand freed memory back to the system (glibc's malloc_trim; nothing elsewhere). Large arrays
    freed by several threads otherwise stay in glibc's heaps once its mmap threshold has risen, and
    a process that codes band after band grows with the image (the 8000x6000 encode of
    `pytest -s tests/test_bands.py -k peak`, AVX2 machine: peak RSS 264 MB without this after each
    band, 235 MB with it; the 2000x1500 one 207 MB)."""
    import ctypes
    import ctypes.util

    global _TRIM
    if _TRIM is None:
        name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
        _TRIM = getattr(ctypes.CDLL(name), "malloc_trim", False) if name else False
    if _TRIM:
        _TRIM(0)


_TRIM = None  # libc's malloc_trim once looked up; False where there is none
