"""Records as the API served them: one rule for copies of a natural key, and flagged records.

Offset paging over live data can serve one record more than once. The rule, applied by the
client while it pages and by the parser once account ids are resolved, is the same
(:class:`ServedLast`): copies of one natural key with the same body are one record (the repeats
are dropped and counted); copies with different bodies are conflicting: the copy served last
is kept, every other copy is quarantined with reason ``conflicting_copy``. Served last because
a later read saw the API's data later, so it is the API's current word on that key.

:class:`FlaggedRecord` carries a record that a page served in a form JSON does not allow (a
``NaN`` or ``Infinity`` literal): decoded leniently so that it costs only itself, never the
page, and quarantined with its text and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

CONFLICTING_COPY = "conflicting_copy"

T = TypeVar("T")


def conflicting_copy_reason(key_fields: Sequence[str]) -> str:
    """The quarantine reason of a superseded copy: names the key's fields, never its values."""
    return (
        f"{CONFLICTING_COPY}: another copy of natural key ({', '.join(key_fields)}) with a "
        "different body was served later and kept"
    )


@dataclass(frozen=True, slots=True)
class FlaggedRecord:
    """A served record that is not valid JSON as it came (``NaN``/``Infinity`` literals).

    ``record`` is what a lenient decoder made of it (an object with float NaN/inf values, or
    whatever else the page held), ``raw_text`` its JSON text with the literals as served, and
    ``problem`` what is wrong with it, naming the field.
    """

    record: Any
    raw_text: str
    problem: str


class _Copies(Generic[T]):
    """The distinct bodies served under one key, the last served at the end."""

    __slots__ = ("bodies",)

    def __init__(self) -> None:
        self.bodies: dict[Hashable, T] = {}


class ServedLast(Generic[T]):
    """Copies of natural keys in the order served; the copy served last wins.

    ``add(key, record, body)`` records one served copy; ``body`` is a callable computing what
    makes two copies identical, called only when a key is served again (most keys are served
    once, and a body is the costly part). ``rereading`` marks a deliberate second read (a
    recovery pass): its identical repeats are expected and not counted.
    """

    def __init__(self) -> None:
        # key -> (first record, its body or None until needed) while served once, else _Copies.
        self._keys: dict[Hashable, tuple[T, Hashable | None] | _Copies[T]] = {}
        self.identical = 0

    def __len__(self) -> int:
        """Distinct keys served."""
        return len(self._keys)

    def add(
        self, key: Hashable, record: T, body: Callable[[T], Hashable], *, rereading: bool = False
    ) -> None:
        seen = self._keys.get(key)
        if seen is None:
            self._keys[key] = (record, None)
            return
        if isinstance(seen, tuple):
            first, first_body = seen
            copies: _Copies[T] = _Copies()
            copies.bodies[first_body if first_body is not None else body(first)] = first
            self._keys[key] = seen = copies
        this_body = body(record)
        if this_body in seen.bodies:
            self.identical += not rereading
            # Served again: it is now the last served copy of its key.
            del seen.bodies[this_body]
        seen.bodies[this_body] = record

    def kept(self) -> list[T]:
        """The last-served copy of every key, keys in the order first served."""
        return [
            seen[0] if isinstance(seen, tuple) else next(reversed(seen.bodies.values()))
            for seen in self._keys.values()
        ]

    def superseded(self) -> list[tuple[Hashable, T, T]]:
        """Every conflicting copy that lost: (key, the superseded copy, the kept copy)."""
        out: list[tuple[Hashable, T, T]] = []
        for key, seen in self._keys.items():
            if isinstance(seen, tuple) or len(seen.bodies) == 1:
                continue
            copies = list(seen.bodies.values())
            out.extend((key, copy, copies[-1]) for copy in copies[:-1])
        return out
