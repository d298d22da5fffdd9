"""Table-maintenance schedules: when to re-insert all neurons and when to redraw hash functions.

Pure Python. Intervals are counted in training samples, as the reference code counts them (its
Amazon-670K config: ``Rehash`` 6,400 and ``Rebuild`` 128,000 samples, i.e. 50 and 1,000 batches
at batch 128 and half as many batches at batch 256), so a schedule means the same at any batch
size. ``action(before, after)`` gives the one thing to do after a batch that took the count of
samples seen from ``before`` to ``after``: ``"redraw"`` (new hash functions, then a full build),
``"rebuild"`` (re-hash every neuron with the current functions) or ``None``. A maintenance point
is due when it lies in ``(before, after]``.
"""

from dataclasses import dataclass
from typing import Literal

Action = Literal["redraw", "rebuild"] | None


def _crossed(every: int, before: int, after: int) -> bool:
    # a multiple of ``every`` in (before, after]
    return every > 0 and after // every > before // every


@dataclass(frozen=True)
class ReferenceSchedule:
    """The reference code's schedule: rebuild every ``rebuild_every`` samples, redraw every
    ``redraw_every`` samples (0 disables either)."""

    rebuild_every: int = 6400  # reference Amazon config: Rehash = 6,400 samples
    redraw_every: int = 128_000  # reference Amazon config: Rebuild = 128,000 samples

    def __post_init__(self) -> None:
        if self.rebuild_every < 0 or self.redraw_every < 0:
            raise ValueError("rebuild_every and redraw_every must be >= 0 (0 disables)")

    def should_redraw(self, before: int, after: int) -> bool:
        """True if the hash functions are due for a redraw after samples ``before..after``."""
        return _crossed(self.redraw_every, before, after)

    def should_rebuild(self, before: int, after: int) -> bool:
        """True if the tables are due for a rebuild after samples ``before..after``."""
        return _crossed(self.rebuild_every, before, after)

    def action(self, before: int, after: int) -> Action:
        """``"redraw"``, ``"rebuild"`` or None (a redraw includes the rebuild)."""
        if self.should_redraw(before, after):
            return "redraw"
        return "rebuild" if self.should_rebuild(before, after) else None


@dataclass(frozen=True)
class DecayingSchedule:
    """The paper's schedule: the first rebuild after ``first_interval`` samples, then intervals
    growing geometrically by ``growth`` (interval i is ``round(first_interval * growth**i)``)."""

    first_interval: int = 6400  # paper: N0 = 50 iterations (of 128 samples)
    growth: float = 1.5  # the paper leaves the decay rate open; interval 50, 75, 112, ... batches
    redraw_every: int = 0  # samples; 0: never redraw (the paper only rebuilds)

    def __post_init__(self) -> None:
        if self.first_interval < 1 or self.growth < 1.0 or self.redraw_every < 0:
            raise ValueError("need first_interval >= 1, growth >= 1 and redraw_every >= 0")

    def rebuild_points(self, up_to: int) -> list[int]:
        """Sample counts ``<= up_to`` at which the tables are due for a rebuild, ascending."""
        points = []
        at, interval = 0, float(self.first_interval)
        while True:
            at += max(1, round(interval))
            if at > up_to:
                return points
            points.append(at)
            interval *= self.growth

    def should_redraw(self, before: int, after: int) -> bool:
        """True if the hash functions are due for a redraw after samples ``before..after``."""
        return _crossed(self.redraw_every, before, after)

    def should_rebuild(self, before: int, after: int) -> bool:
        """True if a rebuild point lies in ``(before, after]`` (O(number of points))."""
        points = self.rebuild_points(after)
        return bool(points) and points[-1] > before

    def action(self, before: int, after: int) -> Action:
        """``"redraw"``, ``"rebuild"`` or None (a redraw includes the rebuild)."""
        if self.should_redraw(before, after):
            return "redraw"
        return "rebuild" if self.should_rebuild(before, after) else None
