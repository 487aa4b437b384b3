"""The bounded timeline sampler, alone and as the allocation table drives it."""

from __future__ import annotations

from gdb_memleak.core.model import Counters
from gdb_memleak.core.table import AllocationTable
from gdb_memleak.core.timeline import Timeline


def drive(timeline: Timeline, sizes, dt=0.0001):
    """Apply signed size changes (+n alloc, -n free) one event each, `dt` seconds apart."""
    c = timeline.counters
    now = 0.0
    for size in sizes:
        now += dt
        c.live_bytes += size
        c.live_blocks += 1 if size > 0 else -1
        timeline.tick(now)
    return now


def test_every_event_is_a_point_until_the_capacity_is_reached():
    timeline = Timeline(Counters(), capacity=64)
    drive(timeline, [8] * 10)
    assert [p.bytes for p in timeline.series()] == [8 * i for i in range(1, 11)]
    assert [p.blocks for p in timeline.series()] == list(range(1, 11))


def test_points_stay_bounded_and_span_the_whole_run():
    timeline = Timeline(Counters(), capacity=100, interval=10.0)
    end = drive(timeline, [16, -16] * 50_000)
    series = timeline.series()
    assert len(series) <= 100
    assert series[-1].time == end
    assert series[0].time < end / 10  # the start of the run is still represented


def test_merging_keeps_the_peak_of_a_short_spike():
    timeline = Timeline(Counters(), capacity=50, interval=10.0)
    sizes = [1] * 10_000 + [1_000_000, -1_000_000] + [1, -1] * 10_000
    drive(timeline, sizes)
    series = timeline.series()
    assert len(series) <= 50
    assert max(p.peak_bytes for p in series) == 10_000 + 1_000_000
    assert max(p.bytes for p in series) < 1_000_000  # the spike fell between samples: only the peak shows it


def test_sparse_events_are_recorded_after_the_interval_even_between_every_nth():
    timeline = Timeline(Counters(), capacity=8, interval=0.001)
    drive(timeline, [1] * 100, dt=0.00001)       # dense: merges raise `every`
    assert timeline.every > 1
    c = timeline.counters
    c.live_bytes += 5
    c.live_blocks += 1
    timeline.tick(60.0)                           # one event a minute later is its own point
    assert timeline.points[-1].time == 60.0


def test_series_ends_with_the_events_since_the_last_point():
    timeline = Timeline(Counters(), capacity=4, interval=100.0)
    drive(timeline, [4] * 9)
    assert timeline.every > 1
    last = timeline.series()[-1]
    assert (last.bytes, last.blocks) == (36, 9)


def test_table_events_drive_its_timeline():
    table = AllocationTable()
    table.on_alloc(0x10, 100, "malloc", 1, (), 0.5)
    table.on_alloc(0x20, 50, "malloc", 1, (), 1.0)
    table.on_free(0x10, "free", 1, (), 1.5)
    table.on_realloc(0x20, 0x30, 80, "realloc", 1, (), 2.0)
    table.on_free(0x999, "free", 1, (), 2.5)         # an invalid free changes nothing live
    series = table.timeline.series()
    assert [(p.time, p.bytes, p.blocks) for p in series] == [
        (0.5, 100, 1), (1.0, 150, 2), (1.5, 50, 1), (2.0, 0, 0), (2.0, 80, 1)]
    assert max(p.peak_bytes for p in series) == table.counters.peak_bytes == 150


def test_snapshot_marks_carry_the_live_counters():
    table = AllocationTable()
    table.on_alloc(0x10, 100, "malloc", 1, (), 0.5)
    table.timeline.mark("before", 0.7)
    (mark,) = table.timeline.marks
    assert (mark.name, mark.time, mark.bytes, mark.blocks) == ("before", 0.7, 100, 1)


def test_forked_table_keeps_the_history_then_follows_its_own_counters():
    parent = AllocationTable()
    parent.on_alloc(0x10, 100, "malloc", 1, (), 0.5)
    child = parent.fork()
    child.on_free(0x10, "free", 1, (), 1.0)
    assert [p.bytes for p in child.timeline.series()] == [100, 0]
    assert [p.bytes for p in parent.timeline.series()] == [100]


def test_replay_takes_recorded_points_and_ends_at_the_current_counters():
    from gdb_memleak.core.model import Counters
    from gdb_memleak.core.timeline import Point, Timeline

    timeline = Timeline(Counters())
    timeline.mark("early", 0.0)
    now = Counters(live_bytes=40, live_blocks=2)
    recorded = [Point(0.1, 10, 1, 30, 2), Point(0.2, 50, 3, 50, 3)]
    timeline.replay(now, recorded, 0.5, hi_bytes=60, hi_blocks=3)
    assert timeline.series() == recorded + [Point(0.5, 40, 2, 60, 3)]
    timeline.mark("late", 0.5)
    assert [(m.name, m.bytes, m.blocks) for m in timeline.marks] == [("early", 0, 0), ("late", 40, 2)]
