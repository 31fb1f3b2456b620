r"""The create call's request rules, as a pure function from body bytes to a request or an error.

Rules (each broken rule answers ``400 invalid_request_error`` naming the field in ``param``,
except an unknown model, which answers ``404 not_found_error`` with
``fallback_suggestion: "z-image-turbo"``):

- the body is a UTF-8 JSON object (no ``NaN``/``Infinity``); unknown fields are ignored;
- ``model``: required string; only ``z-image-turbo``;
- ``prompt``: required string, 1 to 2000 characters, not only whitespace, without a lone
  surrogate (JSON can escape one, ``"\ud800"``, but UTF-8 cannot encode it);
- ``size``: optional; a documented ratio or ``WIDTHxHEIGHT`` with sides 376..1536;
- ``seed``: optional integer (not a boolean, not ``1.0``) from 1 to 2147483647;
- ``nsfw_check``: optional boolean;
- ``callback_url``: optional string of at most 2048 characters, an ``https`` URL with a host
  that is not internal (see ``_addresses``). With loopback callbacks allowed (the
  emulator's ``callback_mode="permissive"``), ``http``/``https`` URLs to 127.0.0.0/8 or
  ``::1`` are accepted too, and nothing else internal.

The body size limit (1 MiB) is enforced while reading, before this module sees the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

import attrs

from ._addresses import is_internal_host, is_loopback_host
from ._envelopes import ApiError
from ._redact import body_repr, url_repr
from ._sizes import RATIO_SIZES, parse_size

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_CALLBACK_URL_CHARS",
    "MAX_PROMPT_CHARS",
    "MAX_SEED",
    "MODEL",
    "CreateRequest",
    "body_too_large",
    "body_unreadable",
    "validate_create",
]

MODEL = "z-image-turbo"
MAX_BODY_BYTES = 1024 * 1024
MAX_PROMPT_CHARS = 2000
MAX_SEED = 2_147_483_647
MAX_CALLBACK_URL_CHARS = 2048


@attrs.frozen(kw_only=True)
class CreateRequest:
    """An accepted create body: the typed fields plus the JSON object as received."""

    model: str
    prompt: str
    size: str | None
    width_pixels: int
    height_pixels: int
    seed: int | None
    nsfw_check: bool
    #: Whole; the repr leaves out its query string (often a token), here and in *body*.
    callback_url: str | None = attrs.field(repr=url_repr)
    body: Mapping[str, object] = attrs.field(repr=body_repr)


def _invalid(param: str | None, message: str) -> ApiError:
    return ApiError(status=400, message=message, type="invalid_request_error", param=param)


def body_too_large() -> ApiError:
    """Return the 413 envelope for a body over :data:`MAX_BODY_BYTES`."""
    return ApiError(
        status=413,
        message=(
            f"The request body is larger than {MAX_BODY_BYTES} bytes (1 MiB); "
            "send a smaller JSON body."
        ),
        type="invalid_request_error",
    )


def body_unreadable() -> ApiError:
    """Return the 400 envelope for a body that could not be read, so no task was made.

    A broken ``Content-Encoding`` (say, bytes that are not gzip under ``gzip``) is the
    client's mistake, answered like any other malformed body, not a 500, which would
    leave the client unsure whether a task was made.
    """
    return _invalid(
        None,
        "The request body could not be read (its Content-Encoding could not be decoded, or "
        "it was cut short); send the JSON body again, uncompressed or properly encoded.",
    )


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _parse_object(raw: bytes) -> dict[str, object] | ApiError:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _invalid(None, "The request body must be a JSON object encoded as UTF-8.")
    if not isinstance(value, dict):
        return _invalid(None, "The request body must be a JSON object, not a JSON array or value.")
    return value


def _check_model(body: Mapping[str, object]) -> ApiError | None:
    model = body.get("model")
    if not isinstance(model, str):
        return _invalid("model", f"The 'model' field is required and must be the string {MODEL!r}.")
    if model != MODEL:
        return ApiError(
            status=404,
            message="Specified model not found",
            type="not_found_error",
            param="model",
            fallback_suggestion=MODEL,
        )
    return None


def _encodable(text: str) -> bool:
    """Tell whether *text* has no lone surrogate, which JSON can escape but UTF-8 cannot hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_prompt(body: Mapping[str, object]) -> ApiError | None:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        return _invalid(
            "prompt", "The 'prompt' field is required and must be a string describing the image."
        )
    if not prompt.strip():
        return _invalid("prompt", "The 'prompt' field must not be empty; describe the image.")
    if not _encodable(prompt):
        return _invalid(
            "prompt",
            "The 'prompt' field must be text UTF-8 can encode; it holds a lone surrogate "
            "(an escape from \\ud800 to \\udfff without its pair).",
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        return _invalid(
            "prompt",
            f"The 'prompt' field must be at most {MAX_PROMPT_CHARS} characters; "
            f"it has {len(prompt)}.",
        )
    return None


def _check_size(body: Mapping[str, object]) -> ApiError | None:
    if "size" not in body:
        return None
    size = body["size"]
    if not isinstance(size, str) or parse_size(size) is None:
        ratios = " ".join(RATIO_SIZES)
        return _invalid(
            "size",
            f"The 'size' field must be one of {ratios} or 'WIDTHxHEIGHT' "
            "with each side from 376 to 1536 pixels.",
        )
    return None


def _check_seed(body: Mapping[str, object]) -> ApiError | None:
    if "seed" not in body:
        return None
    seed = body["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= MAX_SEED:
        return _invalid(
            "seed", f"The 'seed' field must be an integer from 1 to {MAX_SEED}, or be left out."
        )
    return None


def _check_nsfw_check(body: Mapping[str, object]) -> ApiError | None:
    if "nsfw_check" in body and not isinstance(body["nsfw_check"], bool):
        return _invalid("nsfw_check", "The 'nsfw_check' field must be true or false.")
    return None


#: The loopback hosts callback_mode="permissive" takes, as the emulator delivers to them.
_LOOPBACK = "127.0.0.0/8, ::1 or localhost"


def callback_url_problem(url: object, *, allow_loopback: bool) -> str | None:
    """Return why *url* is not an acceptable ``callback_url``, or None if it is acceptable.

    With *allow_loopback* (``callback_mode="permissive"``), an http or https URL to a
    loopback host is acceptable too: an address in 127.0.0.0/8, ``::1``, or the name
    ``localhost``.
    """
    if not isinstance(url, str):
        return "must be a string holding an https URL"
    if len(url) > MAX_CALLBACK_URL_CHARS:
        return f"must be at most {MAX_CALLBACK_URL_CHARS} characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return "must be a well-formed https URL"
    if not host or any(char.isspace() for char in url):
        return "must be a well-formed https URL with a host name"
    if allow_loopback and _is_loopback(host) and parts.scheme in {"http", "https"}:
        return None
    if parts.scheme != "https":
        loopback = f" (or http to a loopback host: {_LOOPBACK})" if allow_loopback else ""
        return f"must use https{loopback}"
    if is_internal_host(host):
        kinds = "loopback, private or link-local"
        if allow_loopback:
            kinds = f"private or link-local; loopback only as {_LOOPBACK}"
        return f"must not point at an internal address ({kinds})"
    return None


def _is_loopback(host: str) -> bool:
    """Whether *host* (lower case, from ``urlsplit``) is a loopback address or ``localhost``.

    The name ``localhost`` itself, as the emulator delivers to it; not ``localhost.``
    nor a name under it, which only a resolver could tell.
    """
    return host == "localhost" or is_loopback_host(host)


def _check_callback_url(body: Mapping[str, object], *, allow_loopback: bool) -> ApiError | None:
    if "callback_url" not in body:
        return None
    problem = callback_url_problem(body["callback_url"], allow_loopback=allow_loopback)
    if problem is None:
        return None
    return _invalid("callback_url", f"The 'callback_url' field {problem}.")


def validate_create(raw: bytes, *, allow_loopback_callbacks: bool) -> CreateRequest | ApiError:
    """Check a create body against the documented rules; return the request or the error."""
    parsed = _parse_object(raw)
    if isinstance(parsed, ApiError):
        return parsed
    body: Mapping[str, object] = MappingProxyType(parsed)
    for problem in (
        _check_model(body),
        _check_prompt(body),
        _check_size(body),
        _check_seed(body),
        _check_nsfw_check(body),
        _check_callback_url(body, allow_loopback=allow_loopback_callbacks),
    ):
        if problem is not None:
            return problem
    size = body.get("size")
    size_text = size if isinstance(size, str) else None
    dimensions = parse_size(size_text)
    assert dimensions is not None
    seed = body.get("seed")
    callback_url = body.get("callback_url")
    prompt = body["prompt"]
    assert isinstance(prompt, str)
    return CreateRequest(
        model=MODEL,
        prompt=prompt,
        size=size_text,
        width_pixels=dimensions[0],
        height_pixels=dimensions[1],
        seed=seed if isinstance(seed, int) else None,
        nsfw_check=body.get("nsfw_check") is True,
        callback_url=callback_url if isinstance(callback_url, str) else None,
        body=body,
    )
