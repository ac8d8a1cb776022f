"""Soak: a hundred explanations in a row must not grow memory or leave threads behind."""

from __future__ import annotations

import gc
import threading

import numpy as np
import psutil
import pytest

from viewer.session import Session

PRESETS = ["epsilon-plus", "epsilon-gamma-box", "epsilon-alpha2-beta1", "epsilon", "epsilon-plus-flat"]
TARGETS = [None, 0, 1, 2, (1, 2)]


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


@pytest.mark.slow
def test_hundred_explanations_keep_memory_and_threads_flat() -> None:
    from viewer.models.demo import demo_paths

    if not demo_paths().model2d.exists():
        pytest.skip("demo assets not built")
    threads_before = set(threading.enumerate())
    s = Session()
    errors: list = []
    s.error.connect(lambda *a: errors.append(a))
    delivered, cancelled_jobs = [], []
    s.result_ready.connect(lambda i: delivered.append(i))
    assert s.open_demo(three_d=False)
    assert s.wait_idle(60)
    rss_after_ten = None
    cancels = 0
    for n in range(100):
        kind = n % 4
        if kind == 0:  # another LRP preset with a fresh ε, so nothing comes from the cache
            s.set_panel_method(0, "lrp", preset=PRESETS[(n // 4) % 5], epsilon=1e-6 * (n + 1))
        elif kind == 1:
            s.set_target(TARGETS[n % 5])
        elif kind == 2:
            s.set_panel_method(0, ["gradcam", "saliency", "input_x_gradient"][n % 3])
        else:
            s.set_panel_method(0, "occlusion", patch=8 + n % 5, stride=8)
            if n % 8 == 3:  # cancel half of the long ones
                s.cancel(0)
                cancels += 1
        assert s.wait_idle(30)
        if n == 9:
            rss_after_ten = _rss()
    rss_end = _rss()
    growth = (rss_end - rss_after_ten) / rss_after_ten
    print(f"\nsoak: RSS after 10 = {rss_after_ten / 2**20:.1f} MiB, after 100 = {rss_end / 2**20:.1f} MiB, "
          f"growth = {100 * growth:.2f} %, results delivered = {len(delivered)}, cancelled = {cancels}, "
          f"cache entries = {s.runner.cache_len}")
    assert errors == []
    assert len(delivered) >= 100 - cancels
    assert s.runner.cache_len <= 16
    assert growth < 0.05
    s.close()
    assert set(threading.enumerate()) == threads_before
