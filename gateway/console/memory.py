"""The console's memory: a login's password hash must not stay in its resident set.

Each login checks a scrypt hash (n = 2^14, r = 8: 16 MB of working memory, users.py), in a
worker thread.  glibc raises its mmap threshold to the size of the first such block freed, so
from the second login on the 16 MB come from that thread's heap and stay there: the console's
resident memory grew by 16 MB after the first logins (bench/bench_console.py: 106 MB against
75 MB).  A fixed threshold — glibc's own default before it adapts, 128 KiB — maps every large
block apart and returns it to the system when it is freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD = 128 * 1024


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold for this process; False where the C library is not glibc
    (nothing to tune there: musl and macOS do not keep such blocks this way)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
