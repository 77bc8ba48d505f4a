"""A rung: the results reported at one budget, ranked, with O(log n) promotion decisions.

The rung keeps its entries split in two heaps: ``top`` holds exactly the best
``top_size(n)`` live entries (a max-heap, so the worst of them is at hand) and
``rest`` holds the others (a min-heap). A new result goes to whichever side it
belongs to, and since ``top_size(n)`` grows by at most one per result, at most
one entry crosses between the heaps per result. A third heap, ``candidates``,
holds the entries that entered ``top`` while promotable; stale ones (promoted,
closed, removed or fallen out of ``top``) are dropped lazily when they reach
its head. Every operation is O(log n) amortized; nothing scans the rung.

Ranking: a key is ``(cls, value, eid)``. ``cls`` is 0 for a finite metric and 1
for "worst" (NaN, infinite metrics, and trials that failed on their way to this
rung); ``value`` is the metric, negated when larger is better; ``eid`` is the
arrival number, so an earlier result ranks ahead of an equal later one.
"""

from __future__ import annotations

import heapq
from typing import Any

REAL = 0
WORST = 1


class Rung:
    """The ranked results of one rung of one bracket."""

    __slots__ = (
        "_candidates",
        "_rest",
        "_rest_live",
        "_top",
        "_top_live",
        "divisor",
        "eligible",
        "in_top",
        "key_cls",
        "key_value",
        "live",
        "n",
        "owner",
        "stop_based",
    )

    def __init__(self, divisor: int, *, stop_based: bool) -> None:
        self.divisor = divisor
        self.stop_based = stop_based
        # Columns indexed by entry id (arrival order within the rung).
        self.key_cls: list[int] = []
        self.key_value: list[Any] = []
        self.owner: list[int] = []  # trial index
        self.live = bytearray()
        self.eligible = bytearray()  # the owner may still be promoted from this entry
        self.in_top = bytearray()
        self.n = 0  # live entries
        self._top: list[tuple[int, Any, int]] = []  # (-cls, -value, -eid): max-heap by key
        self._rest: list[tuple[int, Any, int]] = []  # (cls, value, eid): min-heap by key
        self._candidates: list[tuple[int, Any, int]] = []
        self._top_live = 0
        self._rest_live = 0

    def top_size(self, n: int) -> int:
        """Promotion: floor(n/divisor). Stop-based: max(1, floor(n/divisor)) (none when empty)."""
        k = n // self.divisor
        if self.stop_based and n > 0:
            return max(1, k)
        return k

    def add(self, cls: int, value: Any, owner: int, *, eligible: bool) -> int:
        """Insert a result and return its entry id; ``in_top[eid]`` then says if it ranks in the top."""
        eid = len(self.owner)
        self.key_cls.append(cls)
        self.key_value.append(value)
        self.owner.append(owner)
        self.live.append(1)
        self.eligible.append(1 if eligible else 0)
        self.in_top.append(0)
        self.n += 1
        top = self._top
        self._drop_stale_top()
        if top and (cls, value, eid) < (-top[0][0], -top[0][1], -top[0][2]):
            self._push_top(eid)
        else:
            heapq.heappush(self._rest, (cls, value, eid))
            self._rest_live += 1
        self._rebalance()
        return eid

    def remove(self, eid: int) -> None:
        """Take an entry out as if it had never been reported (a trial with invalid hyperparameters)."""
        if not self.live[eid]:
            return
        self.live[eid] = 0
        self.eligible[eid] = 0
        self.n -= 1
        if self.in_top[eid]:
            self.in_top[eid] = 0
            self._top_live -= 1
        else:
            self._rest_live -= 1
        self._rebalance()

    def best_candidate(self) -> int | None:
        """The best promotable entry within the top, or None."""
        heap = self._candidates
        while heap:
            eid = heap[0][2]
            if self.live[eid] and self.eligible[eid] and self.in_top[eid]:
                return eid
            heapq.heappop(heap)
        return None

    def rank_key(self, eid: int) -> tuple[int, Any, int]:
        return (self.key_cls[eid], self.key_value[eid], eid)

    # -- internals -----------------------------------------------------------------

    def _push_top(self, eid: int) -> None:
        cls, value = self.key_cls[eid], self.key_value[eid]
        heapq.heappush(self._top, (-cls, -value, -eid))
        self.in_top[eid] = 1
        self._top_live += 1
        if self.eligible[eid]:
            heapq.heappush(self._candidates, (cls, value, eid))

    def _drop_stale_top(self) -> None:
        top = self._top
        while top and not (self.live[-top[0][2]] and self.in_top[-top[0][2]]):
            heapq.heappop(top)

    def _rebalance(self) -> None:
        want = self.top_size(self.n)
        top, rest = self._top, self._rest
        while self._top_live > want:
            self._drop_stale_top()
            eid = -heapq.heappop(top)[2]
            self.in_top[eid] = 0
            self._top_live -= 1
            heapq.heappush(rest, (self.key_cls[eid], self.key_value[eid], eid))
            self._rest_live += 1
        while self._top_live < want and self._rest_live > 0:
            eid = heapq.heappop(rest)[2]
            if not self.live[eid] or self.in_top[eid]:
                continue
            self._rest_live -= 1
            self._push_top(eid)

    # -- persistence ---------------------------------------------------------------

    def to_columns(self) -> dict[str, list[Any]]:
        """Plain JSON columns; the heaps are rebuilt from them on load."""
        return {
            "cls": list(self.key_cls),
            "value": list(self.key_value),
            "owner": list(self.owner),
            "live": list(self.live),
            "eligible": list(self.eligible),
        }

    @classmethod
    def from_columns(cls, divisor: int, stop_based: bool, columns: dict[str, list[Any]]) -> Rung:
        rung = cls(divisor, stop_based=stop_based)
        rung.key_cls = [int(c) for c in columns["cls"]]
        rung.key_value = list(columns["value"])
        rung.owner = [int(o) for o in columns["owner"]]
        rung.live = bytearray(columns["live"])
        rung.eligible = bytearray(columns["eligible"])
        count = len(rung.owner)
        if not all(len(columns[c]) == count for c in ("cls", "value", "live", "eligible")):
            raise ValueError("rung columns have different lengths")
        rung.in_top = bytearray(count)
        order = sorted((e for e in range(count) if rung.live[e]), key=rung.rank_key)
        rung.n = len(order)
        want = rung.top_size(rung.n)
        for eid in order[:want]:
            rung.in_top[eid] = 1
        rung._top = [(-rung.key_cls[e], -rung.key_value[e], -e) for e in order[:want]]
        heapq.heapify(rung._top)
        rung._rest = [rung.rank_key(e) for e in order[want:]]  # sorted, hence a heap
        rung._candidates = [rung.rank_key(e) for e in order[:want] if rung.eligible[e]]
        rung._top_live = want
        rung._rest_live = len(order) - want
        return rung
