r"""Keeping secrets out of text made from what the venue sent: redact first, then cut.

Error messages and discrepancies quote the venue (a payload, an error body, a
close reason), and the venue may echo a bearer token back. Three rules:

* **Redact before cutting.** A token cut in half is no longer recognisable
  (neither the exact secret nor the JWT pattern matches its first half), so
  :func:`cut` redacts a window well past the cut, then cuts.
* **Text already cut elsewhere** may end in the first part of a secret;
  :func:`redact` replaces such a tail too, when it is the start of a secret
  it is given.
* **A secret need not appear whole.** Raw text that is not valid JSON is
  quoted as it came, and JSON may escape any character of a string
  (``\u0041`` for ``A``, ``\/`` for ``/``), which hides a token from an
  exact match. So :func:`redact` first writes such escapes of the
  characters tokens are made of as the characters, and then also replaces every run of
  ``_MIN_RUN`` or more characters that a secret it is given contains (what is
  left of a token split some other way).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["body_excerpt", "cut", "redact"]

# A JWT: three base64url parts, the first two starting with '{"' encoded, perhaps glued to
# the end of other base64url characters (kept, group 1). Only a run's first "eyJ" can start
# one (a later one has the same run after it, only shorter), so the search starts at runs
# and takes the first "eyJ" for good (atomic): tried at every "eyJ" of a long run, it took
# quadratic time.
_JWT_RE: Final = re.compile(
    r"(?<![A-Za-z0-9_-])(?>([A-Za-z0-9_-]*?)eyJ)[A-Za-z0-9_-]{4,}+\.[A-Za-z0-9_-]{4,}+\.[A-Za-z0-9_-]*+"
)
#: The characters besides letters and digits that tokens are made of (base64, base64url, JWT).
_TOKEN_MARKS: Final = "._~+/=-"  # noqa: S105 - an alphabet, not a password
#: A JSON escape of a printable ASCII character, or an escaped backslash (kept as it is).
_ESCAPE_RE: Final = re.compile(r"\\(?:u00([2-7][0-9A-Fa-f])|(/)|\\)")
_BEARER_RE: Final = re.compile(r"(?i)(bearer[\"']?\s*[:=]\s*[\"']?|bearer\s+)[A-Za-z0-9._~+/=-]{12,}")
#: How far past a cut :func:`cut` redacts (beyond the longest secret): a JWT shorter than
#: this that straddles the cut is replaced whole.
_LOOKAHEAD: Final = 8192
#: The shortest start of a secret that :func:`redact` replaces at the end of a text.
#: Shorter ones are too likely to be ordinary text.
_MIN_PARTIAL: Final = 8
#: The shortest piece of a secret that :func:`redact` replaces anywhere in a text.
_MIN_RUN: Final = 12
#: What may follow a cut-off secret at the end of an excerpt: a closing quote, an ellipsis.
_TAIL_MARKS: Final = "'\"…"


def redact(text: str, *secrets: str) -> str:
    """``text`` with the given secrets, anything shaped like a JWT, and bearer values replaced by ``***``.

    A secret cut off at the end of ``text`` (its first ``_MIN_PARTIAL`` or more
    characters, then at most a closing quote or an ellipsis) is replaced too,
    and so is any run of ``_MIN_RUN`` or more characters of a secret. JSON
    escapes of the characters tokens are made of come out as the characters.
    """
    if "\\" in text:
        text = _ESCAPE_RE.sub(_unescaped, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            if len(secret) >= _MIN_RUN:
                text = _without_runs(text, secret)
    text = _JWT_RE.sub(r"\1***", text)
    text = _BEARER_RE.sub(lambda m: m.group(1) + "***", text)
    for secret in secrets:
        if len(secret) >= _MIN_PARTIAL:
            text = _without_partial_tail(text, secret)
    return text


def _unescaped(match: re.Match[str]) -> str:
    """An escaped character a token may hold (base64, base64url, JWT) as itself; any other escape as it came."""
    code, slash = match.group(1, 2)
    if code is not None:
        character = chr(int(code, 16))
        return character if character.isalnum() or character in _TOKEN_MARKS else match.group()
    return slash or match.group()


def _without_runs(text: str, secret: str) -> str:
    """``text`` with every run of at least ``_MIN_RUN`` characters of ``secret`` replaced by ``***``.

    Such a run holds a whole block of ``_MIN_RUN // 2`` characters that starts
    at one of every ``_MIN_RUN // 2`` positions, so only those are looked up; a
    run found is grown to the right, then to the left (at most a few
    characters before the block may stay, never a whole run).
    """
    block = _MIN_RUN // 2
    blocks = {secret[k : k + block] for k in range(len(secret) - block + 1)}
    parts: list[str] = []
    kept = 0  # text[:kept] is in parts already
    i = 0
    end = len(text)
    while i + block <= end:
        if text[i : i + block] not in blocks:
            i += block
            continue
        right = i + block
        while right < end and text[i : right + 1] in secret:
            right += 1
        left = i
        while left > kept and text[left - 1 : right] in secret:
            left -= 1
        if right - left < _MIN_RUN:
            i += 1
            continue
        parts.append(text[kept:left])
        parts.append("***")
        kept = i = right
    if not parts:
        return text
    parts.append(text[kept:])
    return "".join(parts)


def _without_partial_tail(text: str, secret: str) -> str:
    body = text.rstrip(_TAIL_MARKS)
    # The longest start of the secret that ends the body (the whole secret is gone already).
    for start in range(max(0, len(body) - len(secret) + 1), len(body) - _MIN_PARTIAL + 1):
        if secret.startswith(body[start:]):
            return body[:start] + "***" + text[len(body) :]
    return text


def cut(text: str, limit: int, *secrets: str) -> str:
    """At most ``limit`` characters of ``text``, redacted (see :func:`redact`) before the cut."""
    window = text[: limit + _LOOKAHEAD + max((len(s) for s in secrets), default=0)]
    return redact(window, *secrets)[:limit]


#: How much of a body :func:`body_excerpt` reads (the excerpt is cut far shorter, after redaction).
_BODY_WINDOW: Final = 16384


def body_excerpt(content: bytes, *secrets: str) -> str:
    """The start of an HTTP body, for an error message: decoded, redacted, cut to 200 characters, quoted.

    Only the body's first ``_BODY_WINDOW`` bytes are read: a huge body costs no more.
    """
    return repr(cut(content[:_BODY_WINDOW].decode("utf-8", "replace"), 200, *secrets))
