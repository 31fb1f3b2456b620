"""The JSON error envelopes the API answers with, as values.

Every error reply of the API has the documented shape
``{"error": {"code", "message", "type", "param"?, "fallback_suggestion"?}}``; this module
holds that shape (:class:`ApiError`) and the canned errors for authentication, unknown
routes and the statuses the fault plan injects, including the gateway family's pre-charge
refusals (402 and 403 with a string ``code`` such as ``insufficient_quota``) and its
envelopes without ``type`` (``type=None``).
"""

from __future__ import annotations

import attrs

__all__ = [
    "ApiError",
    "insufficient_quota",
    "internal_error",
    "method_not_allowed",
    "permission_denied",
    "rate_limited",
    "route_not_found",
    "service_unavailable",
    "typeless_error",
    "unauthorized",
    "upstream_error",
]


@attrs.frozen(kw_only=True)
class ApiError:
    """One error reply: the HTTP status and the fields of the ``error`` object."""

    status: int
    message: str
    type: str | None
    code: int | str | None = None
    param: str | None = None
    fallback_suggestion: str | None = None

    def body(self) -> dict[str, object]:
        """Return the JSON body ``{"error": {...}}``, leaving out absent optional fields."""
        error: dict[str, object] = {
            "code": self.status if self.code is None else self.code,
            "message": self.message,
        }
        if self.type is not None:
            error["type"] = self.type
        if self.param is not None:
            error["param"] = self.param
        if self.fallback_suggestion is not None:
            error["fallback_suggestion"] = self.fallback_suggestion
        return {"error": error}


def unauthorized() -> ApiError:
    """Return the documented 401 for a missing, unknown or expired key."""
    return ApiError(status=401, message="Invalid or expired token", type="authentication_error")


def route_not_found(path: str) -> ApiError:
    """Return a 404 for a path the API does not serve."""
    return ApiError(
        status=404,
        message=f"There is no endpoint at {path!r}; see the API reference for the routes.",
        type="not_found_error",
    )


def method_not_allowed(method: str, path: str) -> ApiError:
    """Return a 405 for a known path called with the wrong method."""
    return ApiError(
        status=405,
        message=f"The method {method} is not allowed for {path!r}.",
        type="invalid_request_error",
    )


def rate_limited(*, suggestion: str | None) -> ApiError:
    """Return the documented 429, with an optional ``fallback_suggestion``."""
    return ApiError(
        status=429,
        message="Rate limit exceeded",
        type="rate_limit_error",
        fallback_suggestion=suggestion,
    )


def internal_error() -> ApiError:
    """Return the documented 500."""
    return ApiError(
        status=500,
        message="Internal server error",
        type="internal_server_error",
        fallback_suggestion="try again later",
    )


def upstream_error() -> ApiError:
    """Return the documented 502."""
    return ApiError(
        status=502,
        message="Upstream AI service unavailable",
        type="upstream_error",
        fallback_suggestion="try different model",
    )


def service_unavailable(*, suggestion: str = "retry after 30 seconds") -> ApiError:
    """Return the documented 503 (its suggestion can be changed for quick tests)."""
    return ApiError(
        status=503,
        message="Service temporarily unavailable",
        type="service_unavailable_error",
        fallback_suggestion=suggestion,
    )


_QUOTA_MESSAGES = {
    "insufficient_quota": "Insufficient quota; top up the balance of this account to continue.",
    "quota_not_enough": "The remaining quota is not enough for this request.",
}
_PERMISSION_MESSAGES = {
    "key_model_not_allowed": "This API key is not allowed to use the model 'z-image-turbo'.",
    "key_disabled": "This API key is disabled.",
    "key_expired": "This API key has expired.",
    "user_disabled": "This account is disabled.",
}


def insufficient_quota(code: str = "insufficient_quota") -> ApiError:
    """Return the gateway's 402 pre-charge refusal with the string *code* (nothing billed).

    Quota, balance, key and account codes alike: the gateway family sends its key
    refusals as 402 too.
    """
    message = _QUOTA_MESSAGES.get(code) or _PERMISSION_MESSAGES.get(code)
    return ApiError(
        status=402,
        code=code,
        message=message or f"The request was refused before charging: {code}.",
        type="insufficient_quota_error",
        param="model" if code == "key_model_not_allowed" else None,
        fallback_suggestion="https://ai.odkkk.com/apiv1/dashboard/billing",
    )


def permission_denied(code: str | None = None) -> ApiError:
    """Return the documented 403 (code 403), or one with the string gateway *code*."""
    if code is None:
        return ApiError(
            status=403,
            message="Access denied for this model",
            type="permission_error",
            param="model",
        )
    return ApiError(
        status=403,
        code=code,
        message=_PERMISSION_MESSAGES.get(code, f"Access denied: {code}."),
        type="permission_error",
        param="model" if code == "key_model_not_allowed" else None,
    )


def typeless_error(status: int, reason: str) -> ApiError:
    """Return a *status* envelope without ``type``, as some gateways in the family send."""
    return ApiError(status=status, message=reason, type=None)
