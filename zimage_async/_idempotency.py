"""Idempotency keys for the billed create call.

The provider's page documents no idempotency key, but the gateway family's newest
official client sends ``Idempotency-Key`` (16-96 characters) on every paid POST and
the gateway answers a repeated key with the task it already made (marked
``idempotency-replayed: true``). Sending one costs nothing where it is ignored, and
where it is honoured it turns every uncertain create into a safe one: the SDK sends
one key per logical submission, the same on each retry and on any later resubmission.
"""

from __future__ import annotations

import os
import re
import secrets

from ._exceptions import InvalidRequestError
from ._quoting import a_type

__all__ = [
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "first_sent_without_key",
    "keyless_import_key",
    "new_key",
    "validate_idempotency_key",
    "validate_own_key",
]

#: The request header that carries the key.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: The response header with which the gateway says it returned an earlier task.
REPLAYED_HEADER = "idempotency-replayed"

_KEY = re.compile(r"[A-Za-z0-9._:-]{16,96}")
_RULE = "16 to 96 characters, each a letter, digit or one of . _ : -"


def new_key() -> str:
    """Return a fresh key: unique across processes and machines (128 random bits).

    >>> len(new_key())
    39
    """
    return f"zimage-{os.urandom(16).hex()}"  # what secrets.token_hex(16) reads, with no layers


#: The start of the key given, when a manifest written before keys is taken over, to a
#: create of it that may have made a task: its first send carried no key, so this key
#: cannot find that task. The mark lives in the key, which every later write keeps.
_KEYLESS = "zimage-keyless-"


def keyless_import_key() -> str:
    """Return a fresh key for a create whose first send carried none (see above).

    >>> first_sent_without_key(keyless_import_key())
    True
    """
    return f"{_KEYLESS}{secrets.token_hex(16)}"


def first_sent_without_key(key: str) -> bool:
    """Whether *key* was made for a create whose first send carried no key.

    >>> first_sent_without_key(new_key())
    False
    """
    return key.startswith(_KEYLESS)


def validate_idempotency_key(key: object) -> str:
    """Return *key* if it is a usable idempotency key; else raise naming the rule.

    >>> validate_idempotency_key("order-4711-image-0001")
    'order-4711-image-0001'
    """
    if not isinstance(key, str):
        raise InvalidRequestError("idempotency_key", _RULE, f"got {a_type(key)}")
    if not _KEY.fullmatch(key):
        problem = (
            f"it has {len(key)} characters"
            if not 16 <= len(key) <= 96
            else "it has a character outside that set"
        )
        raise InvalidRequestError("idempotency_key", _RULE, problem)
    return key


def validate_own_key(key: object) -> str:
    """Return a caller's own *key*, checked, and not in the form :func:`keyless_import_key` makes.

    >>> validate_own_key("order-4711-image-0001")
    'order-4711-image-0001'
    """
    key = validate_idempotency_key(key)
    if first_sent_without_key(key):
        raise InvalidRequestError(
            "idempotency_key",
            f"{_RULE}, not starting with {_KEYLESS} (the mark of a create first sent "
            "without a key, by an earlier version)",
            f"it starts with {_KEYLESS}",
        )
    return key
