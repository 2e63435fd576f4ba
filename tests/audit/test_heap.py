"""Freed heap pages go back to the OS between the engine's phases (audit.heap)."""

from __future__ import annotations

import ctypes.util
import platform
from pathlib import Path

import pytest
import torch

from audit.heap import release_free_memory


def rss_bytes() -> int:
    # resident pages of this process, from /proc (Linux): what a peak-RSS figure counts
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim is glibc's; elsewhere release_free_memory does nothing and says so")
def test_freed_heap_below_a_live_tensor_is_returned() -> None:
    assert ctypes.util.find_library("c")
    # Free one 8 MiB tensor: glibc raises its mmap threshold to 8 MiB, so the next 2 MiB tensors
    # come from the heap. Keep the last one alive: free() alone cannot then shrink the heap past
    # it, and the 100 x 2 MiB = 200 MiB freed below it stay resident until malloc_trim.
    big = torch.ones(2 * 2**20)  # 8 MiB of float32
    del big
    blocks = [torch.ones(2**19) for _ in range(101)]  # 101 x 2 MiB, each written (resident)
    keep = blocks[-1]
    del blocks
    before = rss_bytes()
    assert release_free_memory() is True
    after = rss_bytes()
    assert float(keep[0]) == 1.0  # the live tensor is untouched
    assert before - after > 100 * 2**20  # at least half of the 200 MiB freed below it came back


def test_it_is_safe_to_call_anywhere() -> None:
    # no allocation in flight, nothing freed: a call is a harmless no-op (True on glibc, False elsewhere)
    assert release_free_memory() in (True, False)
    x = torch.arange(10.0)
    release_free_memory()
    assert x.sum().item() == 45.0  # 0 + 1 + ... + 9
