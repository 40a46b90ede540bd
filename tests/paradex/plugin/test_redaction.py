"""Venue text that echoes a token: redacted before it is cut, on every path that quotes the venue.

A token cut in half is no longer recognisable (neither the exact secret nor
the JWT pattern matches its first half), so every excerpt is redacted first
and cut after; text already cut elsewhere loses a trailing start of a secret.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import AsyncIterator

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile_core import Discrepancy, Source
from reconcile_core.errors import ConnectionLostError, ParseError, ReconcileError
from reconcile_paradex import CallableTokenProvider, parse_fill
from reconcile_paradex._parse import malformed
from reconcile_paradex._redact import _JWT_RE, cut, redact

from .fake_venue import FakeParadex, fill_payload, paradex_source
from .test_auth import make_jwt

pytestmark = pytest.mark.anyio

SECRET = "opaque-" + "s" * 150 + "-end"  # not JWT-shaped: only the exact secret finds it


def long_token_minter(fake: FakeParadex) -> CallableTokenProvider:
    """Tokens longer than any excerpt, not JWT-shaped."""
    counter = itertools.count(1)

    def mint() -> str:
        token = f"{next(counter)}{SECRET}"
        fake.valid_tokens.add(token)
        return token

    return CallableTokenProvider(mint)


def leaks(text: str, token: str) -> bool:
    """True when ``text`` holds any 12 consecutive characters of ``token``."""
    return any(token[i : i + 12] in text for i in range(len(token) - 11))


async def drain(hints: AsyncIterator[object]) -> None:
    while True:
        await anext(hints)


# -- the helpers ---------------------------------------------------------------------------------


def test_cut_redacts_a_secret_that_straddles_the_cut() -> None:
    text = "x" * 70 + SECRET + " tail"
    assert text[:80].startswith("x" * 70)  # without redaction, the cut keeps 10 characters of it
    assert cut(text, 80, SECRET) == "x" * 70 + "*** tail"
    jwt = make_jwt(1)
    assert cut("y" * 70 + jwt, 80) == "y" * 70 + "***"


@pytest.mark.parametrize("ending", ["", "'", "…", "'…", '"'])
def test_redact_replaces_the_start_of_a_secret_that_ends_the_text(ending: str) -> None:
    assert redact("got '" + SECRET[:30] + ending, SECRET) == "got '***" + ending
    assert redact("ends with " + SECRET[:8], SECRET) == "ends with ***"


def test_redact_leaves_short_or_unrelated_endings_alone() -> None:
    assert redact("got " + SECRET[:7], SECRET) == "got " + SECRET[:7]  # too short to tell from text
    assert redact("nothing to see", SECRET) == "nothing to see"
    assert redact("opaque-sssx", SECRET) == "opaque-sssx"  # diverges from the secret


def escaped(secret: str, at: int) -> str:
    """``secret`` with the character at ``at`` written as a JSON ``\\u`` escape (what a JSON encoder may do)."""
    return secret[:at] + f"\\u{ord(secret[at]):04x}" + secret[at + 1 :]


def test_redact_replaces_what_is_left_of_a_secret_split_by_escapes() -> None:
    text = '{"token": "' + escaped(escaped(SECRET, 40), 100) + '"'
    assert leaks(text, SECRET)  # no exact match, yet most of it is there
    assert redact(text, SECRET) == '{"token": "***"'
    slashed = "abc/def/ghi/jkl/mno/pqr"
    assert redact("seen: " + slashed.replace("/", "\\/") + ".", slashed) == "seen: ***."
    # an escaped backslash is not the start of an escape; other escapes stay as they came
    assert redact('a \\\\u0041 b \\u0041 c \\n \\u00e9 \\"', SECRET) == 'a \\\\u0041 b A c \\n \\u00e9 \\"'


def test_redact_replaces_runs_of_a_secret_split_some_other_way() -> None:
    split = SECRET[:50] + "\n" + SECRET[50:120] + "…"
    assert redact("seen " + split, SECRET) == "seen ***\n***…"


def test_redact_keeps_runs_shorter_than_twelve_characters() -> None:
    secret = "0123456789abcdefghij"  # noqa: S105 - a test value
    assert redact("x 0123456789a y", secret) == "x 0123456789a y"  # 11 characters of it
    assert redact("x 0123456789ab y 56789abcdefgh z", secret) == "x *** y *** z"
    assert redact("short " + "0123", "0123") == "short ***"  # a secret shorter than a run: exact matches only


_TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+/="  # noqa: S105 - an alphabet


@st.composite
def echoes(draw: st.DrawFn) -> tuple[str, str]:
    """A secret, and text made of pieces of it (some JSON-escaped) between other characters."""
    secret = draw(st.text(alphabet=_TOKEN_ALPHABET, min_size=12, max_size=120))
    pieces: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        start = draw(st.integers(0, len(secret) - 1))
        piece = secret[start : draw(st.integers(start + 1, len(secret)))]
        if draw(st.booleans()) and piece:
            at = draw(st.integers(0, len(piece) - 1))
            piece = piece[:at] + (f"\\u{ord(piece[at]):04x}" if piece[at] != "/" else "\\/") + piece[at + 1 :]
        pieces.append(piece)
        pieces.append(draw(st.text(alphabet=' {}:,"\\#', max_size=3)))
    return secret, "".join(pieces)


@given(echoes())
def test_redact_leaves_no_twelve_characters_of_a_secret(echo: tuple[str, str]) -> None:
    secret, text = echo
    assert not leaks(redact(text, secret), secret)


# -- the parsers (which do not know the token: JWTs and bearer values) --------------------------------


# The JWT pattern as it was: the leftmost "eyJ" with two dot-separated parts after it. It took
# quadratic time on a long run of "eyJeyJ..."; the pattern in _redact must match the same.
_JWT_REFERENCE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


@given(st.text(alphabet="eyJ.ab-_ Z9", max_size=60))
def test_the_jwt_pattern_matches_as_the_plain_one_does(text: str) -> None:
    assert _JWT_RE.sub(r"\1***", text) == _JWT_REFERENCE.sub("***", text)


def test_a_parse_error_quoting_a_jwt_shows_none_of_it() -> None:
    jwt = make_jwt(1) + "x" * 300  # longer than the excerpt
    with pytest.raises(ParseError) as caught:
        parse_fill(fill_payload("f1", price=jwt), account=None, source=Source.REST)
    assert not leaks(str(caught.value), jwt)
    assert "***" in str(caught.value)


def test_a_malformed_rows_excerpt_shows_none_of_a_jwt_across_its_cut() -> None:
    jwt = make_jwt(1)
    row = {"padding": "p" * 250, "price": jwt}  # the JWT starts before character 300 and ends after it
    problem = malformed("fills row 0", ParseError("bad row"), row)
    assert problem.seen is not None
    assert not leaks(problem.seen, jwt)


# -- the WebSocket (which knows the token it sent) -----------------------------------------------------


async def test_an_auth_error_code_echoing_the_token_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeParadex()
    fake.ws_auth_replies.append(lambda token: {"error": {"code": token, "message": "no " + token}})
    async with paradex_source(fake, token=long_token_minter(fake)) as source:
        with pytest.raises(ReconcileError) as caught:
            async with source.subscribe():
                pass
    token = fake.ws_auth_tokens[0]
    error = caught.value
    for text in (str(error), repr(error), str(getattr(error, "code", "")), caplog.text):
        assert not leaks(text, token), text


async def test_unknown_channels_and_methods_echoing_the_token_are_logged_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeParadex()
    async with paradex_source(fake, token=long_token_minter(fake)) as source, source.subscribe() as stream:
        token = fake.ws_auth_tokens[-1]
        await fake.push_text(
            json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": f"x.{token}", "data": {}}})
        )
        await fake.push_text(json.dumps({"jsonrpc": "2.0", "method": f"m.{token}"}))
        await fake.push("positions", {"market": "ETH-USD-PERP"})  # a later hint: the two above were handled first
        with anyio.fail_after(3):
            await stream.__anext__()
    ignored = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert len(ignored) == 2, ignored
    for line in ignored:
        assert not leaks(line, token), line


async def test_an_auth_result_echoing_the_token_is_redacted() -> None:
    fake = FakeParadex()
    fake.ws_auth_replies.append(lambda token: {"result": token})
    async with paradex_source(fake, token=long_token_minter(fake)) as source:
        with pytest.raises(ReconcileError) as caught:
            async with source.subscribe():
                pass
    assert "answered auth" in str(caught.value)
    assert not leaks(str(caught.value), fake.ws_auth_tokens[0])


async def test_a_close_reason_echoing_the_token_is_redacted() -> None:
    fake = FakeParadex()
    async with paradex_source(fake, token=long_token_minter(fake)) as source, source.subscribe() as hints:
        token = fake.ws_auth_tokens[-1]
        await fake.close_all(4001, "bad " + token[:100])  # a close reason holds at most 123 bytes
        with anyio.fail_after(5), pytest.raises(ConnectionLostError) as caught:
            await drain(hints)
    assert "4001" in str(caught.value)
    assert not leaks(str(caught.value), token)


async def test_invalid_json_quoting_an_escaped_token_shows_none_of_it() -> None:
    fake = FakeParadex()
    async with paradex_source(fake, token=long_token_minter(fake)) as source, source.subscribe() as hints:
        token = fake.ws_auth_tokens[-1]
        await fake.push_text('{"jsonrpc": "2.0", "oops": "' + escaped(token, 60) + '", ')  # cut short
        with anyio.fail_after(5):
            problem = await anext(hints)
    assert isinstance(problem, Discrepancy)
    assert problem.seen is not None
    assert "oops" in problem.seen  # the excerpt is there, without the token
    for text in (problem.detail, problem.seen, repr(problem)):
        assert not leaks(text, token), text


async def test_a_rest_body_that_is_not_json_quoting_an_escaped_token_shows_none_of_it() -> None:
    fake = FakeParadex()
    async with paradex_source(fake, token=long_token_minter(fake)) as source:
        await source.positions()  # a token is minted and sent
        token = fake.requests_to("/positions")[-1].headers["authorization"].removeprefix("Bearer ")
        fake.script("/positions", 200, b'{"results": [], "echo": "' + escaped(token, 30).encode() + b'"')
        with pytest.raises(ReconcileError) as caught:
            await source.positions()
    assert "echo" in str(caught.value)
    assert not leaks(str(caught.value), token), str(caught.value)


async def test_a_discrepancy_quoting_a_long_token_shows_none_of_it() -> None:
    fake = FakeParadex()
    async with paradex_source(fake, token=long_token_minter(fake)) as source, source.subscribe() as hints:
        token = fake.ws_auth_tokens[-1]
        await fake.push("fills.ALL", fill_payload("f1", price=token))
        with anyio.fail_after(5):
            problem = await anext(hints)
    assert isinstance(problem, Discrepancy)
    for text in (problem.detail, problem.seen or ""):
        assert not leaks(text, token), text
