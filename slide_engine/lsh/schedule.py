"""Table-maintenance schedules: when to re-insert all neurons and when to redraw hash functions.

Pure Python; ``iteration`` counts completed batches from 1. ``action(iteration)`` gives the one
thing to do after that batch: ``"redraw"`` (new hash functions, then a full build), ``"rebuild"``
(re-hash every neuron with the current functions) or ``None``.
"""

from dataclasses import dataclass
from typing import Literal

Action = Literal["redraw", "rebuild"] | None


@dataclass(frozen=True)
class ReferenceSchedule:
    """The reference code's schedule: rebuild every ``rebuild_every`` batches, redraw every
    ``redraw_every`` batches (0 disables either)."""

    rebuild_every: int = 50  # reference code: re-insert all neurons every 50 batches
    redraw_every: int = 1000  # reference code: new hash functions every 1,000 batches

    def should_redraw(self, iteration: int) -> bool:
        """True after batch ``iteration`` if the hash functions are due for a redraw."""
        return self.redraw_every > 0 and iteration > 0 and iteration % self.redraw_every == 0

    def should_rebuild(self, iteration: int) -> bool:
        """True after batch ``iteration`` if the tables are due for a rebuild."""
        return self.rebuild_every > 0 and iteration > 0 and iteration % self.rebuild_every == 0

    def action(self, iteration: int) -> Action:
        """``"redraw"``, ``"rebuild"`` or None (a redraw includes the rebuild)."""
        if self.should_redraw(iteration):
            return "redraw"
        return "rebuild" if self.should_rebuild(iteration) else None


@dataclass(frozen=True)
class DecayingSchedule:
    """The paper's schedule: the first rebuild after ``first_interval`` batches, then intervals
    growing geometrically by ``growth`` (interval i is ``round(first_interval * growth**i)``)."""

    first_interval: int = 50  # paper: N0 = 50
    growth: float = 1.5  # the paper leaves the decay rate open; interval 50, 75, 112, ...
    redraw_every: int = 0  # 0: never redraw (the paper only rebuilds)

    def __post_init__(self) -> None:
        if self.first_interval < 1 or self.growth < 1.0 or self.redraw_every < 0:
            raise ValueError("need first_interval >= 1, growth >= 1 and redraw_every >= 0")

    def rebuild_points(self, up_to: int) -> list[int]:
        """Iterations ``<= up_to`` after which the tables are rebuilt, ascending."""
        points = []
        at, interval = 0, float(self.first_interval)
        while True:
            at += max(1, round(interval))
            if at > up_to:
                return points
            points.append(at)
            interval *= self.growth

    def should_redraw(self, iteration: int) -> bool:
        """True after batch ``iteration`` if the hash functions are due for a redraw."""
        return self.redraw_every > 0 and iteration > 0 and iteration % self.redraw_every == 0

    def should_rebuild(self, iteration: int) -> bool:
        """True after batch ``iteration`` if it is a rebuild point (O(number of points))."""
        points = self.rebuild_points(iteration)
        return bool(points) and points[-1] == iteration

    def action(self, iteration: int) -> Action:
        """``"redraw"``, ``"rebuild"`` or None (a redraw includes the rebuild)."""
        if self.should_redraw(iteration):
            return "redraw"
        return "rebuild" if self.should_rebuild(iteration) else None
