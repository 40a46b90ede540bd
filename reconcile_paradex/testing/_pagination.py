"""Opaque, signed pagination cursors.

A cursor names a position in one account's list (the ``sequence`` of the
record at a page edge) and a direction. It is base64 of a small JSON
document followed by a truncated HMAC over it, bound to the endpoint and
the account: an edited, truncated or foreign cursor is refused with 400.
Pages are newest first; cursors are keyset positions, so records that
share a millisecond never repeat or go missing across pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

import attrs

__all__ = ["Cursor", "CursorCodec"]

_SIGNATURE_BYTES = 16


@attrs.frozen
class Cursor:
    #: ``"next"`` (older records) or ``"prev"`` (newer records).
    direction: str
    #: The sequence of the record at the page edge (exclusive bound).
    sequence: int


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, endpoint: str, account: str, payload: bytes) -> bytes:
        message = endpoint.encode() + b"\x00" + account.encode() + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def encode(self, cursor: Cursor, *, endpoint: str, account: str) -> str:
        payload = json.dumps({"d": cursor.direction, "s": cursor.sequence}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(payload + self._sign(endpoint, account, payload)).decode("ascii")

    def decode(self, text: str, *, endpoint: str, account: str) -> Cursor | None:
        """The cursor, or None when it is not one this endpoint issued to this account."""
        try:
            raw = base64.urlsafe_b64decode(text.encode("ascii"))
        except (ValueError, binascii.Error):
            return None
        if len(raw) <= _SIGNATURE_BYTES:
            return None
        payload, signature = raw[:-_SIGNATURE_BYTES], raw[-_SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(endpoint, account, payload)):
            return None
        try:
            document = json.loads(payload)
        except ValueError:
            return None
        direction = document.get("d") if isinstance(document, dict) else None
        sequence = document.get("s") if isinstance(document, dict) else None
        if direction not in ("next", "prev") or not isinstance(sequence, int) or isinstance(sequence, bool):
            return None
        return Cursor(direction, sequence)
