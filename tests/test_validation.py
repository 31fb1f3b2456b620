"""Tests for ``zimage_async._validation``: every request field against its documented rule."""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

from zimage_async import GenerationRequest
from zimage_async._exceptions import InvalidRequestError
from zimage_async._idempotency import validate_idempotency_key
from zimage_async._validation import (
    CALLBACK_URL_MAX_CHARS,
    PROMPT_MAX_CHARS,
    RATIO_PIXELS,
    SEED_MAX,
    SEED_MIN,
    SIZE_RATIOS,
    SIZE_SIDE_MAX,
    SIZE_SIDE_MIN,
    TASK_ID_PREFIX,
    expected_dimensions,
    validate_callback_url,
    validate_model,
    validate_nsfw_check,
    validate_prompt,
    validate_seed,
    validate_size,
    validate_task_id,
)

Validator = Callable[[object], object]

VALIDATORS: dict[str, Validator] = {
    "model": validate_model,
    "prompt": validate_prompt,
    "size": validate_size,
    "seed": validate_seed,
    "nsfw_check": validate_nsfw_check,
    "callback_url": validate_callback_url,
    "task_id": validate_task_id,
}

LONG_URL = "https://example.com/" + "a" * (CALLBACK_URL_MAX_CHARS + 1 - len("https://example.com/"))
SECRET_URL = "https://user:hunter2@example.com/hook"

# (field, bad value, a phrase the message must contain)
BAD_INPUTS = [
    # model
    pytest.param("model", "z-image", "is not a model this API serves", id="model-other"),
    pytest.param("model", "Z-Image-Turbo", "is not a model", id="model-case"),
    pytest.param("model", None, "type NoneType", id="model-none"),
    # prompt
    pytest.param("prompt", "", "it is empty", id="prompt-empty"),
    pytest.param("prompt", " \t\n", "only whitespace", id="prompt-whitespace"),
    pytest.param("prompt", "\u3000", "only whitespace", id="prompt-ideographic-space"),
    pytest.param("prompt", "\u200b", "no visible character", id="prompt-zero-width-space"),
    pytest.param("prompt", "\ufeff", "U+FEFF", id="prompt-bom"),
    pytest.param("prompt", " \u2060\u00ad\u200d ", "no visible character", id="prompt-format"),
    pytest.param("prompt", "\x00\x1b\x7f", "U+0000", id="prompt-controls"),
    pytest.param("prompt", "\u3164\ufe0f\u034f", "no visible character", id="prompt-fillers"),
    pytest.param("prompt", "x" * 2001, "2001 characters long", id="prompt-2001"),
    pytest.param("prompt", "\U0001f408" * 2001, "2001 characters", id="prompt-astral-2001"),
    pytest.param("prompt", None, "type NoneType", id="prompt-none"),
    pytest.param("prompt", "bad \ud800 prompt", "U+D800 at position 4", id="prompt-surrogate"),
    pytest.param("prompt", b"a cat", "type bytes", id="prompt-bytes"),
    pytest.param("prompt", 42, "type int", id="prompt-int"),
    # size
    pytest.param("size", "0x0", "width of 0, below the minimum", id="size-zero"),
    pytest.param("size", "375x400", "width of 375, below the minimum of 376", id="size-375"),
    pytest.param("size", "400x375", "height of 375", id="size-height-375"),
    pytest.param("size", "1537x800", "width of 1537, above the maximum", id="size-1537"),
    pytest.param("size", "800x99999999", "height of 8 digits", id="size-huge"),
    pytest.param("size", "16:10", "not one of the listed ratios", id="size-16-10"),
    pytest.param("size", "1:1 ", "contains spaces", id="size-ratio-space"),
    pytest.param("size", "abc", "neither a listed ratio nor WIDTHxHEIGHT", id="size-abc"),
    pytest.param("size", "1024X768", "lower-case 'x'", id="size-upper-x"),
    pytest.param("size", "1024\u00d7768", "lower-case 'x'", id="size-times-sign"),
    pytest.param("size", " 1024x768", "contains spaces", id="size-leading-space"),
    pytest.param("size", "1024 x 768", "contains spaces", id="size-inner-space"),
    pytest.param("size", "+1024x768", "neither", id="size-plus"),
    pytest.param("size", "-1024x768", "neither", id="size-minus"),
    pytest.param("size", "\uff11\uff10\uff12\uff14x768", "neither", id="size-fullwidth"),
    pytest.param("size", "1024x", "neither", id="size-no-height"),
    pytest.param("size", "", "it is empty", id="size-empty"),
    pytest.param("size", (1024, 768), "type tuple", id="size-tuple"),
    pytest.param("size", 1024, "type int", id="size-int"),
    # seed
    pytest.param("seed", 0, "0 is below the minimum of 1", id="seed-zero"),
    pytest.param("seed", -5, "-5 is below the minimum", id="seed-negative"),
    pytest.param("seed", 2147483648, "2147483648 is above the maximum", id="seed-2-31"),
    pytest.param("seed", 10**5000, "bit integer is above the maximum", id="seed-huge"),
    pytest.param("seed", True, "type bool", id="seed-bool"),
    pytest.param("seed", 42.0, "type float", id="seed-float"),
    pytest.param("seed", "42", "type str", id="seed-str"),
    # nsfw_check
    pytest.param("nsfw_check", 1, "type int", id="nsfw-int"),
    pytest.param("nsfw_check", "true", "type str", id="nsfw-str"),
    # task_id
    pytest.param("task_id", "", "does not start with 'task-unified-'", id="task-empty"),
    pytest.param("task_id", "task-1757165031", "does not start with", id="task-prefix"),
    pytest.param("task_id", "TASK-UNIFIED-1", "does not start with", id="task-prefix-case"),
    pytest.param("task_id", TASK_ID_PREFIX, "nothing after", id="task-prefix-only"),
    pytest.param("task_id", "task-unified-1/../x", "character '/'", id="task-slash"),
    pytest.param("task_id", "task-unified-1?x=1", "character '?'", id="task-query"),
    pytest.param("task_id", "task-unified-1#x", "character '#'", id="task-fragment"),
    pytest.param("task_id", "task-unified-%2e%2e", "character '%'", id="task-percent"),
    pytest.param("task_id", "task-unified-..", "character '.'", id="task-dots"),
    pytest.param("task_id", "task-unified-1 2", "U+0020", id="task-space"),
    pytest.param("task_id", "task-unified-1\n", "U+000A", id="task-newline"),
    pytest.param("task_id", "task-unified-\u00e9", "character '\u00e9'", id="task-non-ascii"),
    pytest.param("task_id", "task-unified-" + "a" * 188, "201 characters", id="task-201"),
    pytest.param("task_id", 1757165031, "type int", id="task-int"),
    # callback_url: scheme and shape
    pytest.param("callback_url", "http://example.com/hook", "scheme is 'http'", id="url-http"),
    pytest.param("callback_url", "http://2130706433", "scheme is 'http'", id="url-http-decimal"),
    pytest.param("callback_url", "ftp://example.com/", "scheme is 'ftp'", id="url-ftp"),
    pytest.param("callback_url", "//example.com/hook", "no scheme", id="url-no-scheme"),
    pytest.param("callback_url", "example.com/hook", "no scheme", id="url-bare"),
    pytest.param("callback_url", "https:example.com", "no host", id="url-no-slashes"),
    pytest.param("callback_url", "https:///hook", "no host", id="url-empty-host"),
    pytest.param("callback_url", "", "it is empty", id="url-empty"),
    pytest.param("callback_url", LONG_URL, "2049 characters long", id="url-2049"),
    pytest.param("callback_url", "https://exa mple.com/", "U+0020", id="url-space"),
    pytest.param("callback_url", "https://example.com/\n", "U+000A", id="url-newline"),
    pytest.param("callback_url", "https://example.com/\t", "U+0009", id="url-tab"),
    pytest.param("callback_url", "https://example.com/\u202e", "U+202E", id="url-bidi"),
    pytest.param("callback_url", "https://example.com/\u200b", "U+200B", id="url-zero-width"),
    pytest.param("callback_url", "https://[::1/", "does not parse", id="url-bad-bracket"),
    pytest.param("callback_url", b"https://example.com/", "type bytes", id="url-bytes"),
    # callback_url: credentials
    pytest.param(
        "callback_url",
        "https://api.example.com@10.0.0.1/",
        "really names is '10.0.0.1'",
        id="url-userinfo-trick",
    ),
    pytest.param(
        "callback_url", "https://user:pass@example.com/", "credentials", id="url-userpass"
    ),
    pytest.param("callback_url", "https://@example.com/", "credentials", id="url-empty-userinfo"),
    # callback_url: host syntax and port
    pytest.param("callback_url", "https://%31%32%37.0.0.1/", "character '%'", id="url-pct-host"),
    pytest.param("callback_url", "https://10.0.0.1\\.example.com/", "'\\\\'", id="url-backslash"),
    pytest.param("callback_url", "https://[fe80::1%25eth0]/", "zone id", id="url-zone"),
    pytest.param("callback_url", "https://a:b:c/", "several ':'", id="url-colons"),
    pytest.param("callback_url", "https://example.com:0/", "port '0'", id="url-port-0"),
    pytest.param("callback_url", "https://example.com:65536/", "port '65536'", id="url-port-big"),
    pytest.param("callback_url", "https://example.com:http/", "port 'http'", id="url-port-name"),
    # callback_url: internal hosts
    pytest.param("callback_url", "https://127.0.0.1/hook", "loopback", id="url-loopback"),
    pytest.param("callback_url", "https://10.0.0.1/", "private", id="url-private-10"),
    pytest.param("callback_url", "https://172.16.0.1/", "private", id="url-private-172"),
    pytest.param("callback_url", "https://192.168.0.10:8443/", "private", id="url-private-192"),
    pytest.param(
        "callback_url", "https://169.254.169.254/latest/", "link-local", id="url-metadata"
    ),
    pytest.param("callback_url", "https://100.64.0.1/", "carrier-grade NAT", id="url-cgnat"),
    pytest.param("callback_url", "https://0.0.0.0/", "unspecified", id="url-zero"),
    pytest.param("callback_url", "https://[::1]/", "loopback", id="url-v6-loopback"),
    pytest.param("callback_url", "https://[fe80::1]/", "link-local", id="url-v6-link-local"),
    pytest.param("callback_url", "https://[fd00::1]/", "unique-local", id="url-unique-local"),
    pytest.param("callback_url", "https://[::ffff:127.0.0.1]/", "IPv4-mapped", id="url-mapped"),
    pytest.param("callback_url", "https://[::ffff:7f00:1]/", "IPv4-mapped", id="url-mapped-hex"),
    pytest.param("callback_url", "https://2130706433/", "loopback", id="url-decimal"),
    pytest.param("callback_url", "https://0x7f.1/", "loopback", id="url-hex-short"),
    pytest.param("callback_url", "https://0177.0.0.1/", "loopback", id="url-octal"),
    pytest.param("callback_url", "https://127.1/", "loopback", id="url-short"),
    pytest.param("callback_url", "https://localhost/", "localhost", id="url-localhost"),
    pytest.param("callback_url", "https://api.localhost/", "localhost", id="url-sub-localhost"),
    pytest.param("callback_url", "https://LOCALHOST./", "localhost", id="url-localhost-upper"),
    pytest.param("callback_url", "HTTPS://LocalHost:443/", "localhost", id="url-upper-scheme"),
    pytest.param("callback_url", "https://metadata.google.internal/", ".internal", id="url-gcp"),
    pytest.param("callback_url", "https://metadata/", "single-label", id="url-single-label"),
]


@pytest.mark.parametrize(("field", "value", "phrase"), BAD_INPUTS)
def test_bad_input_refused(field: str, value: object, phrase: str) -> None:
    """Each bad value is refused with InvalidRequestError naming the field and the problem."""
    with pytest.raises(InvalidRequestError) as info:
        VALIDATORS[field](value)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert phrase in str(info.value)
    assert "the rule is: " in str(info.value)


def test_bad_input_catalogue_is_large_and_distinct() -> None:
    """The catalogue holds at least 40 distinct bad inputs."""
    distinct: list[tuple[object, ...]] = []
    for param in BAD_INPUTS:
        key = (param.values[0], type(param.values[1]), param.values[1])
        if key not in distinct:
            distinct.append(key)
    assert len(distinct) == len(BAD_INPUTS) >= 40


def test_invalid_request_error_is_a_value_error() -> None:
    """A refusal can be caught as ValueError, like any bad argument."""
    with pytest.raises(ValueError, match="seed"):
        validate_seed(0)


def test_seed_message_reads_as_a_sentence() -> None:
    """The seed refusal states the field, the problem and the rule in one sentence."""
    with pytest.raises(InvalidRequestError) as info:
        validate_seed(0)
    assert str(info.value) == (
        "seed: 0 is below the minimum of 1; the rule is: an integer from 1 to 2147483647, "
        "or omitted for a random seed."
    )


def test_over_long_prompt_message_gives_length_not_text() -> None:
    """An over-long prompt is described by its length; its text is not quoted."""
    with pytest.raises(InvalidRequestError) as info:
        validate_prompt("secret plans " * 200)
    assert "2600 characters long" in str(info.value)
    assert "secret" not in str(info.value)


@given(
    before=st.text(max_size=30),
    surrogate=st.integers(0xD800, 0xDFFF).map(chr),
    after=st.text(max_size=30),
)
def test_prompts_utf8_cannot_encode_are_refused(before: str, surrogate: str, after: str) -> None:
    """Any prompt holding a lone surrogate is refused, by position, its text not quoted."""
    prompt = f"secret {before}{surrogate}{after}"
    with pytest.raises(InvalidRequestError) as info:
        validate_prompt(prompt)
    message = str(info.value)
    assert info.value.field == "prompt"
    assert f"U+{ord(surrogate):04X} at position {len('secret ' + before)}" in message
    assert "UTF-8" in message
    assert "secret" not in message
    message.encode("utf-8")  # the message itself can be printed and logged


def test_callback_url_message_hides_credentials_and_query() -> None:
    """A refused callback URL's password and query string stay out of the message."""
    with pytest.raises(InvalidRequestError) as info:
        validate_callback_url(SECRET_URL)
    assert "hunter2" not in str(info.value)
    with pytest.raises(InvalidRequestError) as info:
        validate_callback_url("https://127.0.0.1/hook?token=s3cr3t")
    assert "s3cr3t" not in str(info.value)


def test_long_bad_value_quoted_only_in_part() -> None:
    """A long bad value is quoted by its first 60 characters and its length."""
    with pytest.raises(InvalidRequestError) as info:
        validate_model("m" * 150)
    assert "m" * 61 not in str(info.value)
    assert "(150 characters)" in str(info.value)


def test_wrong_type_message_quotes_a_short_repr() -> None:
    """A value of the wrong type is named by its type and a short start of its repr."""
    with pytest.raises(InvalidRequestError) as info:
        validate_size(list(range(1000)))
    assert "got a value of type list" in str(info.value)
    assert len(str(info.value)) < 500


def test_size_rule_names_the_accepted_forms() -> None:
    """The size rule lists the ratios and the WIDTHxHEIGHT form with its bounds."""
    with pytest.raises(InvalidRequestError) as info:
        validate_size("16:10")
    assert all(ratio in info.value.rule for ratio in SIZE_RATIOS)
    assert "WIDTHxHEIGHT" in info.value.rule
    assert "376 to 1536" in info.value.rule


def test_credentials_rule_explains_the_hidden_host() -> None:
    """The refusal of credentials explains that they hide the real host."""
    with pytest.raises(InvalidRequestError) as info:
        validate_callback_url("https://api.example.com@10.0.0.1/")
    assert "hide the real host" in info.value.rule


@pytest.mark.parametrize(
    ("validator", "value", "expected"),
    [
        pytest.param(validate_model, "z-image-turbo", "z-image-turbo", id="model"),
        pytest.param(validate_prompt, "a cute cat", "a cute cat", id="prompt"),
        pytest.param(validate_prompt, "  padded  ", "  padded  ", id="prompt-kept-as-is"),
        pytest.param(validate_prompt, "x" * 2000, "x" * 2000, id="prompt-2000"),
        pytest.param(validate_size, None, None, id="size-none"),
        pytest.param(validate_size, "9:16", "9:16", id="size-ratio"),
        pytest.param(validate_size, "376x1536", "376x1536", id="size-bounds"),
        pytest.param(validate_size, "0512x0768", "512x768", id="size-leading-zeros"),
        pytest.param(validate_seed, None, None, id="seed-none"),
        pytest.param(validate_seed, 1, 1, id="seed-min"),
        pytest.param(validate_seed, 2147483647, 2147483647, id="seed-max"),
        pytest.param(validate_nsfw_check, None, None, id="nsfw-none"),
        pytest.param(validate_nsfw_check, False, False, id="nsfw-false"),
        pytest.param(validate_nsfw_check, True, True, id="nsfw-true"),
        pytest.param(validate_callback_url, None, None, id="url-none"),
        pytest.param(validate_task_id, "task-unified-1757165031-uyujaw3d", None, id="task-id"),
        pytest.param(validate_task_id, "task-unified-a_B-9", None, id="task-id-underscore"),
    ],
)
def test_good_input_accepted(validator: Validator, value: object, expected: object) -> None:
    """A valid value comes back normalised (``None`` in the table means unchanged)."""
    assert validator(value) == (value if expected is None else expected)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://example.com/hook", id="name"),
        pytest.param("https://example.com/hooks/zimage?x=1", id="query"),
        pytest.param("HTTPS://Example.COM:8443/Hook#frag", id="upper-port-fragment"),
        pytest.param("https://example.com:/hook", id="empty-port"),
        pytest.param("https://93.184.216.34/hook", id="public-v4"),
        pytest.param("https://[2606:2800:220:1:248:1893:25c8:1946]/hook", id="public-v6"),
        pytest.param("https://[2606:2800:220:1:248:1893:25c8:1946]:443/hook", id="v6-port"),
        pytest.param("https://b\u00fccher.example/hook", id="idn"),
        pytest.param("https://xn--bcher-kva.example/hook", id="punycode"),
        pytest.param("https://api.example.com./hook", id="trailing-dot"),
        pytest.param("https://my_host.example.com/hook", id="underscore"),
        pytest.param("https://example.com/hook?email=a@b.example", id="at-in-query"),
        pytest.param("https://example.com/caf\u00e9", id="non-ascii-path"),
        pytest.param("https://example.com/" + "a" * 2028, id="exactly-2048"),
    ],
)
def test_callback_url_accepted(url: str) -> None:
    """A public https URL is accepted unchanged."""
    assert validate_callback_url(url) == url


def test_seed_accepts_int_subclass_as_plain_int() -> None:
    """An int subclass other than bool is accepted and returned as a plain int."""

    class Seed(int):
        pass

    result = validate_seed(Seed(7))
    assert result == 7
    assert type(result) is int


@pytest.mark.parametrize(
    ("size", "dimensions"),
    [
        pytest.param(None, (1024, 1024), id="default"),
        pytest.param("1:1", (1024, 1024), id="1:1"),
        pytest.param("2:3", (832, 1248), id="2:3"),
        pytest.param("3:2", (1248, 832), id="3:2"),
        pytest.param("3:4", (864, 1152), id="3:4"),
        pytest.param("4:3", (1152, 864), id="4:3"),
        pytest.param("9:16", (720, 1280), id="9:16"),
        pytest.param("16:9", (1280, 720), id="16:9"),
        pytest.param("1:2", (720, 1440), id="1:2"),
        pytest.param("2:1", (1440, 720), id="2:1"),
        pytest.param("1024x768", (1024, 768), id="custom"),
        pytest.param("0400x0500", (400, 500), id="custom-leading-zeros"),
        pytest.param("16:10", None, id="unknown-ratio"),
        pytest.param("375x400", None, id="out-of-range"),
    ],
)
def test_expected_dimensions(size: str | None, dimensions: tuple[int, int] | None) -> None:
    """Each size maps to the pixel size it should produce, or None if it is not valid."""
    assert expected_dimensions(size) == dimensions


def test_ratio_table_covers_every_ratio_and_is_read_only() -> None:
    """RATIO_PIXELS has exactly the listed ratios, and cannot be changed."""
    assert tuple(RATIO_PIXELS) == SIZE_RATIOS
    with pytest.raises(TypeError):
        RATIO_PIXELS["1:1"] = (1, 1)  # type: ignore[index]


# --- Hypothesis properties -------------------------------------------------------------

side = st.integers(SIZE_SIDE_MIN, SIZE_SIDE_MAX)
bad_side = st.integers(0, SIZE_SIDE_MIN - 1) | st.integers(SIZE_SIDE_MAX + 1, 10**9)
#: Characters a prompt may hold but that show nothing: whitespace, control and format
#: characters, and the other default-ignorable ones.
INVISIBLE = (
    " \t\n\u00a0\u3000\x00\x1b\x7f"  # whitespace and controls
    "\u00ad\u200b\u200c\u200d\u2060\u202e\ufeff"  # format characters
    "\u034f\u115f\u3164\ufe0f"  # a joiner, Hangul fillers, a variation selector
)


def _visible(char: str) -> bool:
    """A letter, digit, punctuation or symbol that is not a Hangul filler."""
    return unicodedata.category(char)[0] in "LNPS" and char not in "\u115f\u1160\u3164\uffa0"


valid_prompt = st.text(min_size=1, max_size=PROMPT_MAX_CHARS).filter(
    lambda s: any(map(_visible, s))
)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
public_name = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(label, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "net", "io", "de", "dev", "example"]),
)
# Every IPv4 range a public address is drawn outside of (the test's own list).
SPECIAL_V4 = [
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
    )
]
public_v4 = st.ip_addresses(v=4).filter(lambda a: not any(a in net for net in SPECIAL_V4))
public_v6 = st.integers(0x2400 << 112, (0x2C00 << 112) - 1).map(ipaddress.IPv6Address)
public_host = public_name | public_v4.map(str) | public_v6.map(lambda a: f"[{a}]")
url_tail = st.from_regex(
    r"(/[A-Za-z0-9._~-]{0,20}){0,4}(\?[a-z]{1,8}=[A-Za-z0-9]{0,16})?", fullmatch=True
)
port = st.none() | st.integers(1, 65535)


def _url(scheme: str, host: str, port: int | None, tail: str) -> str:
    return f"{scheme}://{host}{'' if port is None else f':{port}'}{tail}"


@given(prompt=valid_prompt)
def test_valid_prompts_accepted(prompt: str) -> None:
    """Any string with some non-whitespace text, up to 2000 characters, is accepted unchanged."""
    assert validate_prompt(prompt) == prompt


@given(
    seed=st.text(min_size=1, max_size=40).filter(str.strip),
    length=st.integers(PROMPT_MAX_CHARS + 1, 3000),
)
def test_over_long_prompts_refused(seed: str, length: int) -> None:
    """Any prompt over 2000 characters is refused, with its length in the message."""
    prompt = (seed * (length // len(seed) + 1))[:length]
    with pytest.raises(InvalidRequestError, match=f"it is {length} characters long"):
        validate_prompt(prompt)


@given(prompt=st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u3000", min_size=1))
def test_whitespace_prompts_refused(prompt: str) -> None:
    """A prompt of whitespace alone is refused."""
    with pytest.raises(InvalidRequestError, match="only whitespace"):
        validate_prompt(prompt)


@given(prompt=st.text(alphabet=INVISIBLE, min_size=1, max_size=PROMPT_MAX_CHARS))
def test_prompts_with_no_visible_character_refused(prompt: str) -> None:
    """Whitespace, controls, format characters (U+200B, U+FEFF...) alone: refused."""
    with pytest.raises(InvalidRequestError, match="visible character") as info:
        validate_prompt(prompt)
    assert info.value.field == "prompt"
    assert "visible character" in info.value.rule


@given(
    invisible=st.text(alphabet=INVISIBLE, max_size=20),
    visible=st.characters(codec="utf-8").filter(_visible),
)
def test_one_visible_character_is_enough(invisible: str, visible: str) -> None:
    """A prompt with a visible character among invisible ones is kept as given."""
    prompt = invisible + visible + invisible
    assert validate_prompt(prompt) == prompt


@given(size=st.sampled_from(SIZE_RATIOS) | st.builds("{}x{}".format, side, side))
def test_valid_sizes_accepted(size: str) -> None:
    """Every listed ratio and every WIDTHxHEIGHT within bounds is accepted unchanged."""
    assert validate_size(size) == size
    assert expected_dimensions(size) is not None


@given(width=side, height=side, zeros=st.integers(0, 3))
def test_custom_size_dimensions_match(width: int, height: int, zeros: int) -> None:
    """A WIDTHxHEIGHT size, leading zeros or not, expects exactly that many pixels."""
    size = f"{'0' * zeros}{width}x{height}"
    assert validate_size(size) == f"{width}x{height}"
    assert expected_dimensions(size) == (width, height)


def test_a_size_checked_again_reads_as_it_did_the_first_time() -> None:
    """Sizes already checked are remembered in their normal form; refusals never are."""
    for _ in range(3):
        assert validate_size("0512x0768") == "512x768"
        with pytest.raises(InvalidRequestError, match="above the maximum"):
            validate_size("0512x9999")

    class Size(str):
        """A str subclass: checked afresh each time, and given back as a plain str."""

    assert type(validate_size(Size("0512x0768"))) is str


@given(good=side, bad=bad_side, bad_first=st.booleans())
def test_sizes_with_a_side_out_of_range_refused(good: int, bad: int, bad_first: bool) -> None:
    """A WIDTHxHEIGHT size with either side outside 376..1536 is refused."""
    size = f"{bad}x{good}" if bad_first else f"{good}x{bad}"
    with pytest.raises(InvalidRequestError) as info:
        validate_size(size)
    assert info.value.field == "size"
    assert ("width" if bad_first else "height") in info.value.problem


@given(text=st.text(max_size=12))
@example(text="1:1")
def test_size_accepts_exactly_the_documented_forms(text: str) -> None:
    """Arbitrary text is accepted as a size exactly when it is a ratio or an in-range WxH."""
    parts = text.split("x")
    in_range = (
        len(parts) == 2
        and all(p and p.isascii() and p.isdigit() for p in parts)
        and all(SIZE_SIDE_MIN <= int(p) <= SIZE_SIDE_MAX for p in parts)
    )
    if text in SIZE_RATIOS or in_range:
        assert validate_size(text) is not None
    else:
        with pytest.raises(InvalidRequestError):
            validate_size(text)


@given(seed=st.integers(SEED_MIN, SEED_MAX))
def test_valid_seeds_accepted(seed: int) -> None:
    """Every integer from 1 to 2147483647 is accepted unchanged."""
    assert validate_seed(seed) == seed


@given(seed=st.integers(max_value=SEED_MIN - 1) | st.integers(min_value=SEED_MAX + 1))
def test_out_of_range_seeds_refused(seed: int) -> None:
    """Every integer below 1 or above 2147483647 is refused."""
    with pytest.raises(InvalidRequestError) as info:
        validate_seed(seed)
    assert info.value.field == "seed"


@given(value=st.floats() | st.booleans() | st.text() | st.decimals(allow_nan=False))
def test_non_int_seeds_refused(value: object) -> None:
    """Floats, bools, strings and decimals are refused as seeds, naming their type."""
    with pytest.raises(InvalidRequestError, match=f"type {type(value).__name__}"):
        validate_seed(value)


@given(value=st.integers() | st.text() | st.floats())
def test_non_bool_nsfw_check_refused(value: object) -> None:
    """Anything but True, False or None is refused for nsfw_check."""
    with pytest.raises(InvalidRequestError) as info:
        validate_nsfw_check(value)
    assert info.value.field == "nsfw_check"


@given(host=public_host, port=port, tail=url_tail, scheme=st.sampled_from(["https", "HTTPS"]))
def test_public_https_urls_accepted(host: str, port: int | None, tail: str, scheme: str) -> None:
    """An https URL to a public name or address, any port and path, is accepted unchanged."""
    url = _url(scheme, host, port, tail)
    assert validate_callback_url(url) == url


@given(
    scheme=st.sampled_from(["http", "HTTP", "ftp", "ws", "wss", "file", "gopher", "htps", "data"]),
    host=public_host,
    tail=url_tail,
)
def test_non_https_schemes_refused(scheme: str, host: str, tail: str) -> None:
    """Any scheme but https is refused, even for a public host."""
    with pytest.raises(InvalidRequestError, match="scheme is") as info:
        validate_callback_url(_url(scheme, host, None, tail))
    assert info.value.field == "callback_url"


@given(
    network=st.sampled_from(
        ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
    ),
    offset=st.integers(0, 2**24),
    form=st.sampled_from(["{}", "{:d}", "0x{:x}", "[::ffff:{}]"]),
    port=port,
    tail=url_tail,
)
def test_internal_ipv4_urls_refused(
    network: str, offset: int, form: str, port: int | None, tail: str
) -> None:
    """An https URL to an internal IPv4 address, in several spellings, is refused."""
    net = ipaddress.IPv4Network(network)
    address = net.network_address + offset % net.num_addresses
    host = form.format(int(address) if form in ("{:d}", "0x{:x}") else address)
    with pytest.raises(InvalidRequestError, match="its host") as info:
        validate_callback_url(_url("https", host, port, tail))
    assert info.value.field == "callback_url"


@given(user=st.from_regex(r"[a-z0-9.:]{0,20}", fullmatch=True), host=public_host)
def test_urls_with_credentials_refused(user: str, host: str) -> None:
    """Any user info before '@' is refused, whatever the host."""
    with pytest.raises(InvalidRequestError, match="credentials"):
        validate_callback_url(f"https://{user}@{host}/hook")


@given(host=public_name, extra=st.integers(1, 500))
def test_over_long_urls_refused(host: str, extra: int) -> None:
    """A URL of more than 2048 characters is refused, whatever else it gets right."""
    prefix = f"https://{host}/"
    url = prefix + "a" * (CALLBACK_URL_MAX_CHARS - len(prefix) + extra)
    with pytest.raises(InvalidRequestError, match="characters long"):
        validate_callback_url(url)


@given(rest=st.from_regex(r"[A-Za-z0-9_-]{1,187}", fullmatch=True))
def test_valid_task_ids_accepted(rest: str) -> None:
    """The prefix then 1 to 187 letters, digits, '_' or '-' is accepted unchanged."""
    assert validate_task_id(TASK_ID_PREFIX + rest) == TASK_ID_PREFIX + rest


@given(
    rest=st.from_regex(r"[A-Za-z0-9_-]{0,20}", fullmatch=True),
    bad=st.characters(
        exclude_categories=["Cs"],
        exclude_characters="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
    ),
    position=st.integers(0, 20),
)
def test_task_ids_with_unsafe_characters_refused(rest: str, bad: str, position: int) -> None:
    """A task id with any character outside [A-Za-z0-9_-] after the prefix is refused."""
    task_id = TASK_ID_PREFIX + rest[:position] + bad + rest[position:]
    with pytest.raises(InvalidRequestError, match="contains the character") as info:
        validate_task_id(task_id)
    assert info.value.field == "task_id"


TOKEN = "cbtok_9f8e7d6c5b4a"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("callback_url", URL(f"https://hooks.example.com/z?t={TOKEN}"), id="cb-yarl"),
        pytest.param(
            "callback_url", f"https://hooks.example.com/z?t={TOKEN}".encode(), id="cb-bytes"
        ),
        pytest.param("prompt", f"a cat {TOKEN}".encode(), id="prompt-bytes"),
        pytest.param("prompt", [f"a cat {TOKEN}"], id="prompt-list"),
    ],
)
def test_a_secret_field_of_another_type_is_named_by_its_type_only(
    field: str, value: object
) -> None:
    """A prompt or callback URL is never quoted, not even when its type is wrong."""
    for check in (VALIDATORS[field], lambda v: GenerationRequest(**{"prompt": "a cat", field: v})):
        with pytest.raises(InvalidRequestError) as info:
            check(value)
        assert info.value.field == field
        assert TOKEN not in str(info.value)
        assert f"of type {type(value).__name__}" in str(info.value)


@pytest.mark.parametrize(
    ("key", "described"),
    [(7, "got an int"), (b"k" * 20, "got a bytes"), (None, "got None")],
)
def test_a_key_of_another_type_is_named_with_the_right_article(key: object, described: str) -> None:
    """``idempotency_key: got a int`` read wrong."""
    with pytest.raises(InvalidRequestError) as info:
        validate_idempotency_key(key)
    assert described in str(info.value)
