"""Spend accounting for the journal: limits, what is reserved, the check before a create.

Pure functions over values; the stores run the queries and call these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from ._exceptions import SpendLimitError
from ._journal_records import price_key

__all__ = [
    "UNPRICED_WINDOW",
    "PriceAwaited",
    "Spend",
    "SpendGroup",
    "SpendLimit",
    "check_spend",
    "expected_cost",
    "reserved_credits",
    "summarize_spend",
]


#: Seconds an unpriced create being sent holds back the other unpriced creates of its
#: model and size under a limit; after that (its sender died, say) one more may go.
UNPRICED_WINDOW = 120.0


class PriceAwaited(Exception):
    """The first create of a model and size whose price is unknown is being sent.

    Raised by a store's ``begin`` (nothing written) for another create of that model
    and size, with no cost given, under a spend limit: it would count as 0 credits, so
    a burst of them could together go over the limit. The caller waits for the first
    one's price and begins again (:func:`._journaling.begin_priced`).
    """


@attrs.frozen(kw_only=True)
class SpendLimit:
    """At most *max_credits* reserved in the whole journal, or in one batch.

    >>> SpendLimit(max_credits=-1)
    Traceback (most recent call last):
    ...
    ValueError: max_credits must be a number of credits >= 0, got -1
    """

    max_credits: float = attrs.field()
    #: The batch the limit belongs to; None for every create in the journal.
    batch_id: str | None = None

    @max_credits.validator
    def _check(self, _attribute: object, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"max_credits must be a number of credits >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class SpendGroup:
    """Creates of one model and size that count as spent: what is known, what is not."""

    model: str
    size: str | None
    #: The sum of the costs known for them (``credits_reserved`` or ``expected_cost``).
    known_credits: float
    #: How many of them have no known cost yet.
    unpriced: int = 0


@attrs.frozen(kw_only=True)
class Spend:
    """What the journal (or one batch in it) has reserved."""

    #: Credits reserved, uncertain creates included; unpriced creates at the last price.
    credits: float
    #: Creates that count as spent (every state but ``rejected``).
    creates: int
    #: Of those, the ones in ``submitting`` or ``uncertain`` (a task may or may not exist).
    uncertain: int
    #: Of those, the ones whose cost is still unknown (no price seen for their model/size).
    unpriced: int


def reserved_credits(
    groups: Iterable[SpendGroup], prices: Mapping[tuple[str, str], float]
) -> tuple[float, int]:
    """Return the credits *groups* reserve and how many creates in them are unpriced.

    A create without a known cost counts at the last price seen for its model and size
    (*prices*, by :func:`price_key`), or as 0 credits while none has been seen.

    >>> reserved_credits(
    ...     [SpendGroup(model="m", size=None, known_credits=3.0, unpriced=2)], {("m", ""): 1.5}
    ... )
    (6.0, 0)
    >>> reserved_credits([SpendGroup(model="m", size="1:1", known_credits=0.0, unpriced=2)], {})
    (0.0, 2)
    """
    total = 0.0
    unpriced = 0
    for group in groups:
        total += group.known_credits
        price = prices.get(price_key(group.model, group.size))
        if price is None:
            unpriced += group.unpriced
        else:
            total += price * group.unpriced
    return total, unpriced


def expected_cost(*, given: float | None, last_price: float | None) -> float | None:
    """Return the expected cost of a create: *given* by the caller, else the last price.

    The last price is the ``credits_reserved`` the journal last saw for the same model
    and size. None means unknown: the spend check counts such a create as 0 credits
    until the first task of that model and size reports its cost (and from then on at
    that cost, in-flight ones included). Give a cost to have the first ones checked too.

    >>> expected_cost(given=None, last_price=2.0)
    2.0
    >>> expected_cost(given=0.5, last_price=2.0)
    0.5
    >>> expected_cost(given=None, last_price=None) is None
    True
    """
    if given is not None:
        if isinstance(given, bool) or not given >= 0:
            raise ValueError(f"a create's cost must be a number of credits >= 0, got {given!r}")
        return float(given)
    return last_price


def check_spend(
    limit: SpendLimit, *, reserved: float, expected: float | None
) -> SpendLimitError | None:
    """Return the error refusing a create of cost *expected*, or None if it fits *limit*.

    *reserved* is what the limit's scope already counts, uncertain creates included. An
    unknown (None) or zero cost is refused only once the limit is reached.

    >>> check_spend(SpendLimit(max_credits=10), reserved=9.0, expected=1.0) is None
    True
    >>> check_spend(SpendLimit(max_credits=10), reserved=9.5, expected=1.0)  # doctest: +ELLIPSIS
    SpendLimitError('creating this task would reserve 1 credit(s) on top of ...')
    >>> check_spend(SpendLimit(max_credits=10), reserved=10.0, expected=None) is not None
    True
    """
    cost = expected or 0.0
    fits = reserved + cost <= limit.max_credits if cost else reserved < limit.max_credits
    if fits:
        return None
    return SpendLimitError(
        max_credits=limit.max_credits, reserved=reserved, expected=cost, batch_id=limit.batch_id
    )


def summarize_spend(
    rows: Iterable[Sequence[object]], prices: Mapping[tuple[str, str], float]
) -> Spend:
    """Build a :class:`Spend` from per-(model, size) rows of the stores' spend query.

    Each row: model, size, sum of known costs, count of unpriced creates, count of
    creates, count of uncertain ones.
    """
    groups = []
    creates = uncertain = 0
    for model, size, known, unpriced, count, maybe in rows:
        groups.append(
            SpendGroup(
                model=str(model),
                size=str(size) or None,
                # The stores keep totals to a billionth of a credit (_journal_totals).
                known_credits=round(float(known or 0), 9),  # type: ignore[arg-type]
                unpriced=int(unpriced or 0),  # type: ignore[call-overload]
            )
        )
        creates += int(count or 0)  # type: ignore[call-overload]
        uncertain += int(maybe or 0)  # type: ignore[call-overload]
    credits, unpriced_total = reserved_credits(groups, prices)
    return Spend(credits=credits, creates=creates, uncertain=uncertain, unpriced=unpriced_total)
