"""Table-maintenance schedules: the reference's fixed periods and the paper's decaying one,
counted in samples."""

import pytest

from slide_engine.lsh import DecayingSchedule, ReferenceSchedule


def _actions(schedule, batch, n_batches):
    return {it: schedule.action((it - 1) * batch, it * batch) for it in range(1, n_batches + 1)}


def test_reference_schedule_at_batch_128_rebuilds_every_50_and_redraws_every_1000():
    actions = _actions(ReferenceSchedule(), 128, 3000)
    assert [it for it, a in actions.items() if a == "redraw"] == [1000, 2000, 3000]
    rebuilds = [it for it, a in actions.items() if a == "rebuild"]
    assert rebuilds == [it for it in range(50, 3001, 50) if it % 1000]
    assert ReferenceSchedule().action(0, 0) is None


def test_reference_schedule_counts_samples_not_batches():
    # the reference's Rehash 6,400 / Rebuild 128,000 samples: at batch 256 every 25 batches and
    # a redraw every 500; at batch 100 a rebuild after batches 64, 128, 192 (6,400 = 64 * 100)
    actions = _actions(ReferenceSchedule(), 256, 1000)
    assert [it for it, a in actions.items() if a == "redraw"] == [500, 1000]
    assert [it for it, a in actions.items() if a][:4] == [25, 50, 75, 100]
    actions = _actions(ReferenceSchedule(), 100, 200)
    assert [it for it, a in actions.items() if a] == [64, 128, 192]
    # a batch of uneven size still triggers once per crossed point
    s = ReferenceSchedule(rebuild_every=100, redraw_every=0)
    assert s.action(90, 130) == "rebuild" and s.action(130, 199) is None
    assert s.action(199, 200) == "rebuild"


def test_decaying_schedule_intervals_grow_geometrically():
    s = DecayingSchedule(first_interval=50, growth=2.0)
    points = s.rebuild_points(1000)
    assert points == [50, 150, 350, 750]
    assert [it for it in range(1, 1001) if s.should_rebuild(it - 1, it)] == points
    assert not any(s.should_redraw(it - 1, it) for it in range(1, 1001))
    # in samples at batch 10: due after the batches that cross 50, 150, 350, 750
    assert [b for b in range(1, 101) if s.should_rebuild(10 * (b - 1), 10 * b)] == [5, 15, 35, 75]


def test_decaying_schedule_with_growth_one_is_periodic_and_can_redraw():
    s = DecayingSchedule(first_interval=40, growth=1.0, redraw_every=200)
    assert s.rebuild_points(200) == [40, 80, 120, 160, 200]
    assert s.action(199, 200) == "redraw" and s.action(119, 120) == "rebuild"
    assert s.action(120, 121) is None


def test_schedules_validate():
    with pytest.raises(ValueError):
        DecayingSchedule(growth=0.5)
    with pytest.raises(ValueError):
        ReferenceSchedule(rebuild_every=-1)
