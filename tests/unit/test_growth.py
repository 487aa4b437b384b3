"""What keeps growing (core/growth.py) on synthetic series: a leak is ranked, a cache that fills then stops drops out
once it has plateaued, churn and a stack that frees what it took are never ranked; the history stays bounded."""

from __future__ import annotations

import pytest

from gdb_memleak.core.growth import MIN_SAMPLES, RECENT, WINDOW, GrowthHistory, Sample, judge

LEAK = ("malloc", (0x401010, 0x401000))
CACHE = ("malloc", (0x401020, 0x401000))
CHURN = ("calloc", (0x401030, 0x401000))
FREED = ("operator new", (0x401040, 0x401000))


def series(values: list[int], step: float = 2.0) -> tuple[Sample, ...]:
    """A stack's live bytes at samples `step` seconds apart (16 bytes a block)."""
    return tuple(Sample(i * step, v, v // 16) for i, v in enumerate(values))


def leak(n: int) -> list[int]:
    return [16 * (i + 1) for i in range(n)]


def cache(n: int, cap: int = 4) -> list[int]:
    return [64 * min(i + 1, cap) for i in range(n)]


def churn(n: int) -> list[int]:
    return [32 if i % 2 else 48 for i in range(n)]


def freed(n: int) -> list[int]:
    return [100 * (i + 1) if i < 3 else 0 for i in range(n)]


def history_of(steps: int) -> GrowthHistory:
    history = GrowthHistory()
    for i in range(steps):
        sums = {LEAK: (leak(steps)[i], i + 1), CACHE: (cache(steps)[i], min(i + 1, 4)), CHURN: (churn(steps)[i], 1)}
        if freed(steps)[i]:
            sums[FREED] = (freed(steps)[i], i + 1)
        history.sample(i * 2.0, sums)
    return history


def test_a_leak_is_growing_at_its_rate_over_the_window():
    found = judge(LEAK, series(leak(12)))
    assert found is not None
    assert found.rate == pytest.approx(8.0)  # 16 bytes per 2 s
    assert (found.bytes, found.blocks) == (192, 12)
    assert (found.grew, found.samples) == (WINDOW - 1, WINDOW)
    assert len(found.history) == 12


def test_a_leak_needs_the_minimum_number_of_samples():
    assert judge(LEAK, series(leak(MIN_SAMPLES - 1))) is None
    assert judge(LEAK, series(leak(MIN_SAMPLES))) is not None


def test_a_cache_grows_while_it_fills_and_drops_out_once_it_plateaus():
    assert judge(CACHE, series(cache(4))) is not None                # still filling
    assert judge(CACHE, series(cache(4 + RECENT - 1))) is not None   # one flat interval: not yet a plateau
    assert judge(CACHE, series(cache(4 + RECENT))) is None           # flat in the recent intervals: a plateau
    assert judge(CACHE, series(cache(20))) is None


def test_churn_up_and_down_is_not_growth_even_when_it_rises_more_often_than_not():
    assert judge(CHURN, series(churn(12))) is None
    # rises in 4 of 7 intervals and ends higher than it began, but gives back most of what it gains
    assert judge(CHURN, series([32, 48, 32, 48, 32, 48, 40, 48])) is None


def test_a_stack_that_freed_what_it_took_is_not_growing():
    assert judge(FREED, series(freed(8))) is None
    assert judge(FREED, series([0, 100, 200, 300, 400, 500, 600, 100])) is None  # rose, then mostly freed


def test_a_leak_with_some_frees_keeps_growing():
    """Request buffers that are freed but one of which leaks now and then: up more often than down, most kept."""
    found = judge(LEAK, series([100, 180, 160, 240, 320, 300, 380, 460]))
    assert found is not None and found.grew == 5


def test_the_ranking_puts_the_fastest_first_and_leaves_out_the_plateau_churn_and_freed():
    history = history_of(4)  # the cache is still filling, faster than the leak
    assert [(g.allocator, g.pcs) for g in history.ranking()] == [CACHE, LEAK]
    history = history_of(10)
    assert [(g.allocator, g.pcs) for g in history.ranking()] == [LEAK]
    assert len(history) == 10


def test_a_stack_first_seen_later_has_only_its_own_samples():
    history = GrowthHistory()
    for i in range(6):
        history.sample(float(i), {LEAK: (16 * (i + 1), i + 1), **({CACHE: (64 * (i - 2), 1)} if i > 2 else {})})
    assert [s.time for s in history.history(CACHE)] == [3.0, 4.0, 5.0]
    assert [s.bytes for s in history.history(CACHE)] == [64, 128, 192]


def test_history_keeps_the_last_samples_only():
    history = GrowthHistory(max_samples=5)
    for i in range(12):
        history.sample(float(i), {LEAK: (16 * (i + 1), i + 1)})
    assert len(history) == 5
    assert [s.time for s in history.history(LEAK)] == [7.0, 8.0, 9.0, 10.0, 11.0]


def test_only_the_largest_stacks_are_followed_and_the_rest_is_counted():
    history = GrowthHistory(max_stacks=2)
    history.sample(0.0, {LEAK: (16, 1), CACHE: (64, 1), CHURN: (32, 1)})
    assert set(history.series) == {CACHE, CHURN}
    assert history.pushed_out == 1


def test_a_stack_with_nothing_live_over_its_kept_history_is_forgotten():
    history = GrowthHistory(max_samples=3)
    history.sample(0.0, {FREED: (100, 1)})
    for i in range(1, 4):
        history.sample(float(i), {})
    assert FREED not in history.series
    assert len(history) == 3
