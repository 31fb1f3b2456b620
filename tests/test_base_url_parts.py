"""A base URL with credentials, a query or a fragment: the refusal names which, never them."""

from __future__ import annotations

import pytest

from zimage_async import InvalidRequestError, Session

KEY = "sk-test-0123456789"
SECRET = "hunter2pw"


@pytest.mark.parametrize(
    ("url", "has", "shown"),
    [
        pytest.param(
            f"https://svc:{SECRET}@api.example.com/apiv1",
            "has credentials",
            "'https://***@api.example.com/apiv1'",
            id="user-and-password",
        ),
        pytest.param(
            f"https://{SECRET}@api.example.com/apiv1",
            "has credentials",
            "'https://***@api.example.com/apiv1'",
            id="user-only",
        ),
        pytest.param(
            f"https://api.example.com/apiv1?key={SECRET}",
            "has a query",
            "'https://api.example.com/apiv1?***'",
            id="query",
        ),
        pytest.param(
            f"https://api.example.com/apiv1#{SECRET}",
            "has a fragment",
            "'https://api.example.com/apiv1#***'",
            id="fragment",
        ),
        pytest.param(
            f"https://svc:{SECRET}@api.example.com/apiv1?key={SECRET}#{SECRET}",
            "has credentials, a query and a fragment",
            "'https://***@api.example.com/apiv1?***'",
            id="all-three",
        ),
        pytest.param(
            f"http://svc:{SECRET}@127.0.0.1:9/apiv1?t={SECRET}",
            "has credentials and a query",
            "'http://***@127.0.0.1:9/apiv1?***'",
            id="loopback-credentials-and-query",
        ),
    ],
)
@pytest.mark.parametrize("where", ["argument", "ZIMAGE_BASE_URL"])
def test_the_refusal_names_what_the_base_url_has(
    url: str, has: str, shown: str, where: str
) -> None:
    """The problem says credentials, a query or a fragment, on the URL with them masked."""
    options: dict[str, object] = {"api_key": KEY, "environ": {}}
    if where == "argument":
        options["base_url"] = url
    else:
        options["environ"] = {"ZIMAGE_BASE_URL": url}
    with pytest.raises(InvalidRequestError) as caught:
        Session(**options)  # type: ignore[arg-type]
    error = caught.value
    assert error.field == "base_url"
    assert error.problem == f"{shown} {has}"
    assert "it has some" not in str(error)
    assert SECRET not in str(error) and "svc" not in str(error)
    assert error.rule == "no credentials, query or fragment in the base URL"


@pytest.mark.parametrize(
    ("suffix", "has"),
    [
        pytest.param("?", "has a query", id="bare-question-mark"),
        pytest.param("#", "has a fragment", id="bare-hash"),
        pytest.param("?#", "has a query and a fragment", id="both-bare"),
    ],
)
def test_an_empty_query_or_fragment_is_refused_too(suffix: str, has: str) -> None:
    """A bare ``?`` or ``#`` sent every call to another path (``/apiv1?/v1/...``): refused."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=KEY, base_url=f"http://127.0.0.1:9/apiv1{suffix}", environ={})
    assert caught.value.field == "base_url"
    assert caught.value.problem.endswith(has)


def test_an_empty_user_before_the_host_is_refused_too() -> None:
    """``https://@host`` names empty credentials: refused as credentials are."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=KEY, base_url="http://@127.0.0.1:9/apiv1", environ={})
    assert caught.value.problem.endswith("has credentials")
