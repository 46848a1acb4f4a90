"""Progress arithmetic (SPEC 6): phases weighted by their rows, a monotonic overall, an ETA.

Pure: the caller passes the clock readings in, so tests drive time by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.timefmt import format_iso

# `overall` reaches exactly 1.0 only through `succeed()`; before that it is capped here.
MAX_UNFINISHED = 0.999
# A step phase (prepare, finalize, unpack) weighs this share of the row phases' total.
STEP_SHARE = 0.02
# Smoothing of the rate behind the ETA: higher follows changes faster, lower is steadier.
RATE_SMOOTHING = 0.3


@dataclass(slots=True)
class Phase:
    """One phase: its units of work done and total, and whether those units are rows."""

    name: str
    rows: bool
    total: int = 0
    done: int = 0
    sized: bool = False  # set_total was called: the total is known (zero included)

    def fraction(self) -> float:
        """How much of this phase is done, in [0, 1]."""
        if self.total <= 0:
            return 0.0
        return min(1.0, self.done / self.total)


class ProgressTracker:
    """Tracks one attempt's phases and turns them into the API's progress object."""

    def __init__(
        self,
        phases: Sequence[tuple[str, bool]],
        *,
        started: float,
        floor: float = 0.0,
    ) -> None:
        """`floor`: the overall this attempt already showed (a later delivery of the same
        attempt, e.g. an import going on after its confirmation, never shows less)."""
        if not phases:
            raise ValueError("a job has at least one phase")
        self.phases = [Phase(name, rows) for name, rows in phases]
        self._index = 0
        self._started = started
        self._overall = min(max(0.0, floor), MAX_UNFINISHED)
        self._succeeded = False
        self._rate: float | None = None
        self._last: tuple[float, float] | None = None  # (clock, overall) of the last sample

    @property
    def phase(self) -> Phase:
        """The current phase."""
        return self.phases[self._index]

    def _find(self, name: str) -> int:
        for index, phase in enumerate(self.phases):
            if phase.name == name:
                return index
        raise KeyError(f"no phase named {name!r}")

    def set_total(self, name: str, total: int) -> None:
        """Declare how many units a phase will do (known once `prepare` has counted)."""
        phase = self.phases[self._find(name)]
        phase.total = max(0, int(total))
        phase.sized = True

    def start(self, name: str) -> None:
        """Enter phase `name`; every earlier phase counts as complete from now on."""
        index = self._find(name)
        if index < self._index:
            raise ValueError(f"phase {name!r} comes before the current phase")
        for earlier in self.phases[:index]:
            earlier.done = max(earlier.done, earlier.total)
        self._index = index

    def advance(self, units: int = 1) -> None:
        """Count `units` more done in the current phase."""
        self.phase.done += units

    def complete_phase(self) -> None:
        """Mark the current phase fully done (its total, or 1 unit for a step phase)."""
        phase = self.phase
        if phase.total <= 0 and not phase.rows:
            phase.total = 1
        phase.done = max(phase.done, phase.total)

    def succeed(self) -> None:
        """The job succeeded: every phase is done and `overall` is exactly 1."""
        for phase in self.phases:
            if not phase.rows:
                phase.total = max(phase.total, 1)
            phase.done = phase.total
        self._index = len(self.phases) - 1
        self._succeeded = True

    def _weights(self) -> list[float]:
        row_total = sum(p.total for p in self.phases if p.rows)
        step_weight = max(1.0, STEP_SHARE * row_total)
        return [float(p.total) if p.rows else step_weight for p in self.phases]

    def overall(self) -> float:
        """Weighted share of work done: in [0, 1], never decreasing, 1 only on success."""
        if self._succeeded:
            return 1.0
        if any(p.rows for p in self.phases) and not any(p.sized for p in self.phases if p.rows):
            # The job's size is not known yet (an import still unpacking): the step phases
            # alone would claim a large share of it.
            return self._overall
        weights = self._weights()
        total_weight = sum(weights)
        done = 0.0
        for index, (phase, weight) in enumerate(zip(self.phases, weights, strict=True)):
            if index < self._index:
                done += weight
            elif phase.total > 0:
                done += weight * phase.fraction()
        value = done / total_weight if total_weight > 0 else 0.0
        self._overall = max(self._overall, min(value, MAX_UNFINISHED))
        return self._overall

    def eta_seconds(self, now: float) -> float | None:
        """Seconds left at the smoothed recent rate; None until there is a rate."""
        overall = self.overall()
        if self._succeeded:
            return 0.0
        if self._last is None:
            self._last = (self._started, 0.0)
        last_time, last_overall = self._last
        if now - last_time >= 0.2:
            instant = (overall - last_overall) / (now - last_time)
            self._rate = (
                instant
                if self._rate is None
                else RATE_SMOOTHING * instant + (1 - RATE_SMOOTHING) * self._rate
            )
            self._last = (now, overall)
        if not self._rate or self._rate <= 0 or overall <= 0:
            return None
        return round((1.0 - overall) / self._rate, 1)

    def snapshot(self, *, now: float, wall: datetime) -> dict[str, Any]:
        """The progress object of SPEC 6."""
        phase = self.phase
        return {
            "phase": phase.name,
            "phase_index": self._index,  # 0-based, as in SPEC 6 (samples is 3 of 5)
            "phase_count": len(self.phases),
            "phase_done": phase.done,
            "phase_total": phase.total,
            "rows_done": sum(p.done for p in self.phases if p.rows),
            "rows_total": sum(p.total for p in self.phases if p.rows),
            "overall": round(self.overall(), 4) if not self._succeeded else 1.0,
            "eta_seconds": self.eta_seconds(now),
            "updated_at": format_iso(wall),
        }
