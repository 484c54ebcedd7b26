"""windows.py -- distinct users per one-minute event-time window, closed by a watermark with allowed lateness."""

from dataclasses import dataclass
from typing import Dict, List, Optional, Set, Union

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Count:
    """A closed minute: `users` distinct uids with an event in [start_ms, start_ms + 1 min)."""
    start_ms: int
    users: int
    late: int            # of its events, how many came after a later minute's event (within the lateness)


@dataclass(frozen=True)
class TooLate:
    """An event for a minute already closed (and reported): not counted."""
    uid: str
    ts: int
    start_ms: int        # its minute
    watermark: int       # the watermark when it came


Output = Union[Count, TooLate]


def minute_of(ts: int) -> int:
    """The start (ms) of the minute holding ts."""
    return ts - ts % MINUTE_MS


class MinuteWindows:
    """Counts distinct uids per minute of event time. The watermark is the
    largest event time seen minus `lateness_ms`; a minute is closed, and its
    Count emitted, once the watermark reaches its end. Every minute from the
    first event's on is emitted, in order, with 0 for a minute without
    events. An event for a closed minute is a TooLate, counted nowhere."""

    def __init__(self, lateness_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self.max_ts: Optional[int] = None
        self.watermark: Optional[int] = None
        self.next_start: Optional[int] = None     # the earliest minute not emitted yet
        self._users: Dict[int, Set[str]] = {}
        self._late: Dict[int, int] = {}

    def add(self, uid: str, ts: int) -> List[Output]:
        """Takes one event; returns what it closed (Counts in order) or its TooLate."""
        start = minute_of(ts)
        if self.watermark is not None and start + MINUTE_MS <= self.watermark:
            return [TooLate(uid, ts, start, self.watermark)]
        if self.next_start is None or start < self.next_start:
            self.next_start = start           # only before anything is emitted (else it was too late)
        self._users.setdefault(start, set()).add(uid)
        if self.max_ts is not None and minute_of(self.max_ts) > start:
            self._late[start] = self._late.get(start, 0) + 1
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
        return self.advance(ts - self.lateness_ms)

    def advance(self, watermark: int) -> List[Output]:
        """Moves the watermark to `watermark` if that is later (also for
        wall-clock idleness); returns the Counts of the minutes it closed."""
        if self.watermark is not None and watermark <= self.watermark:
            return []
        self.watermark = watermark
        out: List[Output] = []
        while self.next_start is not None and self.next_start + MINUTE_MS <= watermark:
            s = self.next_start
            out.append(Count(s, len(self._users.pop(s, ())), self._late.pop(s, 0)))
            self.next_start = s + MINUTE_MS
        return out
