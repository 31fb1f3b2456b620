"""FaultRule options out of range are refused when the rule is made, not sent on the wire."""

from __future__ import annotations

import pytest

from zimage_async.emulator import FaultRule


@pytest.mark.parametrize("value", [-5, -1, 2.5, 60.0, 10**30, 2**31, True, "60"], ids=repr)
@pytest.mark.parametrize("kind", ["http_429", "http_503", "http_503_after_create"])
def test_retry_after_seconds_out_of_range_is_refused(kind: str, value: object) -> None:
    """Negative, fractional, huge or non-int values would go out as invalid Retry-After."""
    with pytest.raises(ValueError, match="retry_after_seconds"):
        FaultRule(kind=kind, retry_after_seconds=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, 0, 7, 3600, 999_999, 2**31 - 1], ids=repr)
def test_retry_after_seconds_in_range_is_taken(value: int | None) -> None:
    """None (the documented default), 0 and whole seconds up to 2**31 - 1 are accepted."""
    assert FaultRule(kind="http_429", retry_after_seconds=value).retry_after_seconds == value
