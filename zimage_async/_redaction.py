"""Request headers that never show the API key: :class:`RedactedHeaders`.

Part of the thin aiohttp layer (:mod:`zimage_async._transport`): the plain header dict
aiohttp needs is built from a :class:`RedactedHeaders` inside the request call only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import NoReturn

from multidict import CIMultiDict, CIMultiDictProxy

from ._secret import MASK, Secret

#: The fewest characters of a value sent in a body (a callback URL's query value) that
#: answers are searched for: a token is longer; a short value is a plain word.
QUOTED_MIN = 12

__all__ = [
    "QUOTED_MIN",
    "READ_HEADERS",
    "SECRET_HEADERS",
    "RedactedHeaders",
    "SealedBody",
    "kept_headers",
    "mask_echoes",
]

#: Headers whose values are secrets: masked in every printed form, never sent to images.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

#: The only headers of an API answer its readers look at: a :class:`~zimage_async._reply.Reply`
#: keeps these alone, so that a header echoing the key (a challenge, a redirect) is never
#: held anywhere a traceback's locals or an error report would show it.
READ_HEADERS = ("Retry-After", "Date", "Idempotency-Replayed")
_NONE_KEPT: Mapping[str, str] = CIMultiDictProxy(CIMultiDict())

#: The short escapes of a JSON string, by the character they stand for.
_SHORT_ESCAPES = {
    '"': b'\\"',
    "\\": b"\\\\",
    "/": b"\\/",
    "\b": b"\\b",
    "\f": b"\\f",
    "\n": b"\\n",
    "\r": b"\\r",
    "\t": b"\\t",
}
_MASK = MASK.encode()


def _spellings(char: str) -> bytes:
    r"""Return a pattern matching *char* however a JSON string may write it.

    As itself (UTF-8), as ``\u`` and its UTF-16 code in hex digits of either case (two
    such for a character beyond the BMP), or as its short escape (``\/`` for ``/``).
    """
    units = char.encode("utf-16-be")
    escape = b""
    for at in range(0, len(units), 2):
        digits = units[at : at + 2].hex().encode()  # lowercase: "a" to "f" are 0x61 on
        escape += rb"\\u" + b"".join(
            b"[%c%c]" % (d, d - 32) if d >= 0x61 else bytes([d]) for d in digits
        )
    ways = [escape]
    if char in _SHORT_ESCAPES:
        ways.append(re.escape(_SHORT_ESCAPES[char]))
    if char not in '"\\' and char >= " ":  # what a JSON string may hold unescaped
        ways.append(re.escape(char.encode()))
    return b"(?:" + b"|".join(ways) + b")"


#: A percent sign as an answer may echo it: itself or encoded again, maybe JSON-escaped.
_PERCENT = rb"(?:%|\\u0025)(?:25)?"


def _url_spellings(char: str) -> bytes:
    """Return a pattern matching *char* of a URL's query however an answer may write it.

    Every JSON spelling (:func:`_spellings`), its UTF-8 bytes percent-encoded (hex digits
    of either case, the ``%`` itself maybe encoded again), and ``+`` for a space.
    """
    encoded = b"".join(
        _PERCENT + b"".join(b"[%c%c]" % (d, d + 32) if d >= 0x41 else bytes([d]) for d in hexed)
        for hexed in (b"%02X" % byte for byte in char.encode("utf-8", "surrogatepass"))
    )
    ways = [_spellings(char), encoded, *([rb"\+"] if char == " " else [])]
    return b"(?:" + b"|".join(ways) + b")"


class _Echoes:
    r"""Finds and masks echoes of some secrets in an answer, however JSON escapes them.

    An answer may echo a secret with any of its characters escaped (``\u0073k-...``),
    which decodes to the secret itself: the secrets are looked for in every spelling a
    JSON string allows, and each echo is replaced with ``***``. Escapes are read whole
    while masking, so text after an escaped backslash (``\\u0073``) is left as it is,
    and the answer stays the JSON it was. Holds no readable secret (its repr is masked).
    """

    __slots__ = ("_escapes", "_find", "_mask")

    def __init__(self, secrets: Iterable[str], spell: Callable[[str], bytes] = _spellings) -> None:
        secrets = tuple(secrets)
        echo = b"|".join(b"".join(map(spell, secret)) for secret in secrets)
        self._find = re.compile(echo)
        self._mask = re.compile(b"(" + echo + rb")|\\(?:u[0-9A-Fa-f]{4}|.)", re.DOTALL)
        # The escapes that can spell a character of a secret: "\u" any, a short one
        # ("\/"...) only the character it stands for.
        shorts = {_SHORT_ESCAPES[char] for char in "".join(secrets) if char in _SHORT_ESCAPES}
        self._escapes = (b"\\u", *sorted(shorts))

    def __repr__(self) -> str:
        return "_Echoes(***)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("echo patterns cannot be pickled")

    def escaped_in(self, body: bytes) -> bool:
        """Whether *body* holds an escape that can spell a character of a secret."""
        return any(escape in body for escape in self._escapes)

    def mask(self, body: bytes) -> bytes:
        """Return *body* with every echo masked (the very same object when it has none)."""
        if self._find.search(body) is None:
            return body
        return self._mask.sub(_masked, body)


def _masked(match: re.Match[bytes]) -> bytes:
    return _MASK if match.group(1) is not None else match.group()


#: What may be left of one escape where an answer was cut short: ``\u00``, ``%2``...
_PART_ESCAPE = rb"(?:[\\%][\\%u0-9A-Fa-f]{0,7})?\Z"
#: A letter or digit percent-encoded (``%73``, ``%2573``); else echoes show them plainly.
_ENCODED_ALNUM = re.compile(rb"%(?:25)?(?:3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa])")


class _Quoted:
    r"""The values a request's body sent (a callback URL's token) that its answers must not echo.

    Found in every answer, in every spelling a JSON string or a URL allows (``\u0073``,
    ``%73``, ``%2f`` for ``%2F``, ``%252F`` in an encoded URL; :func:`_url_spellings`).
    An answer without ``\``, ``%`` (nor ``+``, for a value with a space) can hold them only
    as they are, and is searched for those bytes; one without ``\u`` nor an encoded letter
    or digit, first for their longest runs of letters and digits. The patterns are made on
    first need, once. At the end of an answer cut short, a start of one is masked too.
    """

    __slots__ = ("_echoes", "_plain", "_plus", "_runs", "_secrets", "_tails")

    def __init__(self, secrets: tuple[Secret, ...]) -> None:
        self._secrets = secrets
        plain = [secret.reveal().encode("utf-8", "surrogatepass") for secret in secrets]
        self._plus = any(b" " in value for value in plain)
        self._runs = tuple(max(re.split(rb"[^0-9A-Za-z]+", value), key=len) for value in plain)
        self._plain = tuple(v for v in plain if b"%" not in v and b"\\" not in v)  # else escaped
        self._echoes: _Echoes | None = None
        self._tails: tuple[tuple[int, re.Pattern[bytes]], ...] | None = None

    def __repr__(self) -> str:
        return "_Quoted(***)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("echo patterns cannot be pickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Quoted) and other._secrets == self._secrets

    def mask(self, body: bytes, *, cut: bool) -> bytes:
        """Return *body* with every echo masked (the very same object when it has none)."""
        if not (b"\\" in body or b"%" in body or (self._plus and b"+" in body)):
            for plain in self._plain:
                if plain in body:
                    body = body.replace(plain, _MASK)
        elif b"\\u" in body or _ENCODED_ALNUM.search(body) or any(r in body for r in self._runs):
            echoes = self._echoes
            if echoes is None:
                secrets = [secret.reveal() for secret in self._secrets]
                echoes = self._echoes = _Echoes(secrets, _url_spellings)
            body = echoes.mask(body)
        return self._cut_end(body) if cut else body

    def _cut_end(self, body: bytes) -> bytes:
        """Return *body*, cut short, without the start of a secret at its end."""
        if self._tails is None:
            self._tails = tuple(map(_tail, self._secrets))
        found = [tail.search(body, max(0, len(body) - reach)) for reach, tail in self._tails]
        start = min((match.start() for match in found if match), default=len(body))
        return body if start == len(body) else body[:start] + _MASK


def _tail(secret: Secret) -> tuple[int, re.Pattern[bytes]]:
    """Return how far from the end to look, and a pattern of a start of *secret* at the end.

    Group *i* (character *i*) is tried only when the one before matched: no nesting, which
    Python's regular expressions allow a few hundred deep at most.
    """
    chars = secret.reveal()
    steps = [b"(" + _url_spellings(chars[0]) + b")?"]
    steps += [b"(?(%d)(%s)?)" % (at, _url_spellings(char)) for at, char in enumerate(chars[1:], 1)]
    reach = sum(max(12, 10 * len(char.encode("utf-8", "surrogatepass"))) for char in chars)
    return reach + 8, re.compile(b"".join(steps) + _PART_ESCAPE, re.DOTALL)


class RedactedHeaders:
    """Request headers whose every printed form hides the ``Authorization`` value.

    Deliberately *not* a mapping (nor a sequence): error reporters serialise mappings
    item by item (Sentry's SDK does so with the local variables of every frame), and
    would send the key; for anything else they fall back to the repr, which is masked.
    The values of ``Authorization``, ``Proxy-Authorization`` and ``Cookie`` are kept as
    :class:`~zimage_async._secret.Secret` objects, so not even ``vars()`` shows them.
    Only the transport turns it into the header dict aiohttp needs, inside the call.
    Build one per kind of request and reuse it: :meth:`with_header` makes a copy with
    one more header (an ``Idempotency-Key``) without touching the original.

    >>> headers = RedactedHeaders({"Authorization": "Bearer sk-1", "Accept": "text/plain"})
    >>> headers["Idempotency-Key"] = "abc"
    >>> headers
    RedactedHeaders({'Authorization': '***', 'Accept': 'text/plain', 'Idempotency-Key': 'abc'})
    """

    __slots__ = ("_echoes", "_masks", "_quoted", "_values")

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._values: dict[str, str | Secret] = {}
        # What an answer must not echo, found once, when a secret header is set: the
        # secrets as they are, and a finder of every JSON spelling of them.
        self._masks: tuple[Secret, ...] = ()
        self._echoes: _Echoes | None = None
        self._quoted: _Quoted | None = None  # sent in the body; masked in its answers
        for name, value in (headers or {}).items():
            self[name] = value

    def __setitem__(self, name: str, value: str) -> None:
        if name.lower() not in SECRET_HEADERS:
            self._values[name] = value
            return
        self._values[name] = Secret(value)
        token = value.partition(" ")[2] or value  # the token of "Bearer <token>"
        if len(token) >= 4 and Secret(token) not in self._masks:
            self._masks += (Secret(token),)
            self._echoes = _Echoes(mask.reveal() for mask in self._masks)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in {k.lower() for k in self._values}

    def __repr__(self) -> str:
        shown = {k: (MASK if isinstance(v, Secret) else v) for k, v in self._values.items()}
        return f"RedactedHeaders({shown!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("RedactedHeaders cannot be pickled")

    def with_header(self, name: str, value: str) -> RedactedHeaders:
        """Return a copy with *name* set to *value*; this one is left as it is.

        >>> base = RedactedHeaders({"Accept": "text/plain"})
        >>> base.with_header("Idempotency-Key", "k1")
        RedactedHeaders({'Accept': 'text/plain', 'Idempotency-Key': 'k1'})
        >>> base
        RedactedHeaders({'Accept': 'text/plain'})
        """
        copy = self._quoting(self._quoted)
        copy[name] = value
        return copy

    def masking(self, *secrets: str) -> RedactedHeaders:
        """Return a copy whose answers also have *secrets* (sent in the body) masked.

        For a callback URL's query values (a token for the receiver), which a refusal may
        quote and a gateway may echo in a task: every answer, whatever its status, is
        searched for every spelling of them (:class:`_Quoted`), if they have at least
        :data:`QUOTED_MIN` characters: a short value (``?v=2``) is no token, and masked
        in a task's JSON it would corrupt the answer.

        >>> headers = RedactedHeaders({"Accept": "text/plain"}).masking("hook-1234567890")
        >>> mask_echoes(b'{"message": "bad url ?token=hook%2D1234567890"}', headers)
        b'{"message": "bad url ?token=***"}'
        >>> mask_echoes(b'{"input": {"callback_url": "/hook?token=hook-12', headers, cut=True)
        b'{"input": {"callback_url": "/hook?token=***'
        """
        kept = tuple(Secret(s) for s in dict.fromkeys(secrets) if len(s) >= QUOTED_MIN)
        return self._quoting(_Quoted(kept) if kept else None)

    def masking_as(self, other: RedactedHeaders) -> RedactedHeaders:
        """Return a copy whose answers have what *other*'s have masked (:meth:`masking`)."""
        return self._quoting(other._quoted)

    def masks_as(self, other: RedactedHeaders) -> bool:
        """Whether the answers of these headers and of *other* have the same values masked."""
        return self._quoted == other._quoted

    def _quoting(self, quoted: _Quoted | None) -> RedactedHeaders:
        copy = RedactedHeaders()
        copy._values, copy._masks, copy._echoes = dict(self._values), self._masks, self._echoes
        copy._quoted = quoted
        return copy

    def _wire(self, user_agent: str | None) -> dict[str, str]:
        """Return the plain header dict for aiohttp; call it only inside the request call.

        *user_agent* is added unless these headers set one (``None``: the session that
        sends them already has it among its default headers).
        """
        wire = {} if user_agent is None else {"User-Agent": user_agent}
        for name, value in self._values.items():
            if user_agent is not None and name.lower() == "user-agent":
                del wire["User-Agent"]
            wire[name] = value.reveal() if isinstance(value, Secret) else value
        return wire

    def _tokens(self) -> list[bytes]:
        """Return the secret values (and the token of ``Bearer <token>``), to mask echoes."""
        return [mask.reveal().encode() for mask in self._masks]


def mask_echoes(body: bytes, headers: RedactedHeaders, *, cut: bool = False) -> bytes:
    r"""Replace every echo of a request secret of *headers* in an answer's *body* with ``***``.

    An echo is the secret however a JSON string spells it, any of its characters escaped
    (``\u0073k-...`` decodes to ``sk-...``), so that no field decoded from the answer
    can carry it. A body without an escape that can spell a character of a secret (no
    ``\u``, nor ``\/`` for a secret with a ``/``...) has the secrets looked for as they
    are. A body without an echo is returned as it came. JSON in UTF-16 or UTF-32 (which
    the answer's reading accepts, as the standard library does) is turned into UTF-8
    first, so that its echoes are found too. Every answer, whatever its status, is also
    searched for the secrets the request's body sent (:meth:`RedactedHeaders.masking`),
    percent-encoded too, and, when it was *cut* short, for the start of one at its end.
    """
    if b"\x00" in body:  # JSON text in UTF-8 has no NUL byte; in UTF-16 and UTF-32 it has
        body = _as_utf8(body)
    quoted = headers._quoted
    if quoted is not None:  # a create's callback token, or a read of the task it made
        body = quoted.mask(body, cut=cut)
    masks, echoes = headers._masks, headers._echoes
    if echoes is not None and b"\\" in body and echoes.escaped_in(body):
        return echoes.mask(body)
    for mask in masks:
        token = mask.reveal().encode()
        if token in body:
            body = body.replace(token, _MASK)
    return body


def _as_utf8(body: bytes) -> bytes:
    """Return a JSON *body* in UTF-16 or UTF-32 as UTF-8 (as it came if it is neither)."""
    try:  # lone surrogates kept, as the answer's reading (json.loads) keeps them
        return body.decode(json.detect_encoding(body), "surrogatepass").encode(
            "utf-8", "surrogatepass"
        )
    except UnicodeError:  # not JSON of any encoding: its reading fails, nothing is shown
        return body


def kept_headers(received: Mapping[str, str], headers: RedactedHeaders) -> Mapping[str, str]:
    """Return the :data:`READ_HEADERS` of an answer, any echo of *headers*' secrets masked.

    Looked up without regard to case, as HTTP names are; the other headers are dropped.
    """
    kept: CIMultiDict[str] | None = None
    for name in READ_HEADERS:
        value = received.get(name)
        if value is None:
            continue
        for mask in headers._masks:
            value = value.replace(mask.reveal(), MASK)
        if kept is None:
            kept = CIMultiDict()
        kept[name] = value
    return _NONE_KEPT if kept is None else CIMultiDictProxy(kept)


class SealedBody:
    """A request body that no repr shows: a create's body holds the callback URL's token.

    Like :class:`RedactedHeaders`, it is opened only in the call that hands it to aiohttp,
    so the frames that carry it (a traceback's locals) show its size alone.
    """

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def reveal(self) -> bytes:
        """Return the bytes to send."""
        return self._data

    def __repr__(self) -> str:
        return f"<request body, {len(self._data)} bytes>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SealedBody cannot be pickled")
