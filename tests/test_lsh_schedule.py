"""Table-maintenance schedules: the reference's fixed periods and the paper's decaying one."""

import pytest

from slide_engine.lsh import DecayingSchedule, ReferenceSchedule


def test_reference_schedule_rebuilds_every_50_and_redraws_every_1000():
    s = ReferenceSchedule()
    actions = {it: s.action(it) for it in range(0, 3001)}
    assert [it for it, a in actions.items() if a == "redraw"] == [1000, 2000, 3000]
    rebuilds = [it for it, a in actions.items() if a == "rebuild"]
    assert rebuilds == [it for it in range(50, 3001, 50) if it % 1000]
    assert s.action(0) is None


def test_decaying_schedule_intervals_grow_geometrically():
    s = DecayingSchedule(first_interval=50, growth=2.0)
    points = s.rebuild_points(1000)
    assert points == [50, 150, 350, 750]
    assert [it for it in range(1, 1001) if s.should_rebuild(it)] == points
    assert not any(s.should_redraw(it) for it in range(1, 1001))


def test_decaying_schedule_with_growth_one_is_periodic_and_can_redraw():
    s = DecayingSchedule(first_interval=40, growth=1.0, redraw_every=200)
    assert s.rebuild_points(200) == [40, 80, 120, 160, 200]
    assert s.action(200) == "redraw" and s.action(120) == "rebuild" and s.action(121) is None


def test_decaying_schedule_validates():
    with pytest.raises(ValueError):
        DecayingSchedule(growth=0.5)
