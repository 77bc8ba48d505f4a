"""The rung structure against a sorted list: top membership, candidates, removal, and rebuild on load."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from searchkit_asha._rungs import Rung

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 1), st.integers(-3, 3), st.booleans()),
        st.tuples(st.just("remove"), st.integers(0, 10**6)),
        st.tuples(st.just("promote"), st.integers(0, 1)),
        st.tuples(st.just("reload"), st.integers(0, 1)),
    ),
    max_size=120,
)


@given(ops=OPS, divisor=st.integers(2, 4), stop_based=st.booleans())
def test_rung_matches_a_sorted_list(ops: list[Any], divisor: int, stop_based: bool) -> None:
    rung = Rung(divisor, stop_based=stop_based)
    live: dict[int, tuple[int, int, int]] = {}  # eid -> key
    eligible: set[int] = set()
    for op in ops:
        if op[0] == "add":
            _, cls, value, is_eligible = op
            value = 0 if cls else value
            eid = rung.add(cls, value, owner=len(live), eligible=is_eligible)
            live[eid] = (cls, value, eid)
            if is_eligible:
                eligible.add(eid)
        elif op[0] == "remove" and live:
            eid = sorted(live)[op[1] % len(live)]
            rung.remove(eid)
            del live[eid]
            eligible.discard(eid)
        elif op[0] == "promote":
            candidate = rung.best_candidate()
            if candidate is not None:
                rung.eligible[candidate] = 0
                eligible.discard(candidate)
        elif op[0] == "reload":
            rung = Rung.from_columns(divisor, stop_based, rung.to_columns())
        ranked = sorted(live, key=live.__getitem__)
        n = len(ranked)
        size = (max(1, n // divisor) if n else 0) if stop_based else n // divisor
        top = set(ranked[:size])
        assert rung.n == n
        assert {e for e in live if rung.in_top[e]} == top
        best = [e for e in ranked[:size] if e in eligible]
        assert rung.best_candidate() == (best[0] if best else None)
