"""Keeping secrets out of text made from what the venue sent: redact first, then cut.

Error messages and discrepancies quote the venue (a payload, an error body, a
close reason), and the venue may echo a bearer token back. Two rules:

* **Redact before cutting.** A token cut in half is no longer recognisable
  (neither the exact secret nor the JWT pattern matches its first half), so
  :func:`cut` redacts a window well past the cut, then cuts.
* **Text already cut elsewhere** may end in the first part of a secret;
  :func:`redact` replaces such a tail too, when it is the start of a secret
  it is given.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["cut", "redact"]

# A JWT: three base64url parts, the first two starting with '{"' encoded.
_JWT_RE: Final = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER_RE: Final = re.compile(r"(?i)(bearer[\"']?\s*[:=]\s*[\"']?|bearer\s+)[A-Za-z0-9._~+/=-]{12,}")
#: How far past a cut :func:`cut` redacts (beyond the longest secret): a JWT shorter than
#: this that straddles the cut is replaced whole.
_LOOKAHEAD: Final = 8192
#: The shortest start of a secret that :func:`redact` replaces at the end of a text.
#: Shorter ones are too likely to be ordinary text.
_MIN_PARTIAL: Final = 8
#: What may follow a cut-off secret at the end of an excerpt: a closing quote, an ellipsis.
_TAIL_MARKS: Final = "'\"…"


def redact(text: str, *secrets: str) -> str:
    """``text`` with the given secrets, anything shaped like a JWT, and bearer values replaced by ``***``.

    A secret cut off at the end of ``text`` (its first ``_MIN_PARTIAL`` or more
    characters, then at most a closing quote or an ellipsis) is replaced too.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _JWT_RE.sub("***", text)
    text = _BEARER_RE.sub(lambda m: m.group(1) + "***", text)
    for secret in secrets:
        if len(secret) >= _MIN_PARTIAL:
            text = _without_partial_tail(text, secret)
    return text


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
