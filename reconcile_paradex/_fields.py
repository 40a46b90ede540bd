"""Field readers for Paradex JSON: strict where a value is nonsense, lenient where Paradex is loose.

Paradex sends decimals as strings (``""`` meaning absent), integers sometimes
as numeric strings, and ids as strings. Everything here raises
:class:`reconcile_core.errors.ParseError` (naming the field) and nothing else.
Unknown enum values are not errors: they become the enum's ``UNKNOWN`` member
plus a :class:`reconcile_core.Discrepancy`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from reconcile_core import Discrepancy, DiscrepancyKind, Severity
from reconcile_core.errors import ParseError

from ._redact import cut

__all__ = ["Fields", "decode_json", "excerpt", "is_ms", "is_nonempty_str"]

E = TypeVar("E")

#: Longest string accepted for any field: ids are at most ~30 digits, market
#: names and codes are short. A longer value is nonsense, not data.
MAX_TEXT_CHARS: Final = 512
#: Longest numeric string (decimal or integer) accepted.
MAX_NUMBER_CHARS: Final = 64
#: Decimals whose magnitude is beyond 10**±40 are nonsense for prices, sizes and fees.
MAX_DECIMAL_EXPONENT: Final = 40
#: Integers must fit a signed 64-bit value (Paradex's seq_no and timestamps do).
MAX_INT: Final = 2**63 - 1
#: Digits of MAX_INT, less one: a Decimal whose ``adjusted()`` exceeds this is beyond it.
_MAX_INT_DIGITS: Final = len(str(MAX_INT)) - 1
#: JSON integers longer than this are rejected while decoding (before Python
#: builds a huge int or trips its own digit limit).
MAX_JSON_INT_DIGITS: Final = 40

# ASCII digits only: Python's int() and Decimal() also accept other scripts' digits.
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT_RE = re.compile(r"[+-]?[0-9]+")


def is_nonempty_str(value: object) -> bool:
    """Runtime check of a caller's argument (annotations are not enforced)."""
    return isinstance(value, str) and bool(value)


def is_ms(value: object) -> bool:
    """True for an ``int`` of milliseconds >= 0 (``bool`` excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_unicode(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (JSON's ``"\\ud800"``): no UTF-8 can store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def excerpt(value: object, limit: int = 80) -> str:
    """A short ``repr`` of a value for error messages, JWTs and bearer values redacted before the cut.

    (A venue may echo a token into any field; the session's own token is
    redacted later, by whoever knows it: see ``_redact``.)
    """
    text = cut(repr(value), limit + 1)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


class OutOfRange:
    """A JSON number :func:`decode_json` does not build: an integer of more than
    ``MAX_JSON_INT_DIGITS`` digits, or an exponent ``Decimal`` refuses.

    It stands where the number was. No field reader accepts it, so a field
    that holds one fails alone (one row's discrepancy, not the whole page's),
    and a field nobody reads (a venue's new one, say) costs nothing.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text[:24]  # enough to recognise it in a message

    def __repr__(self) -> str:
        return f"<a number out of range: {self.text}...>"


def _bounded_int(text: str) -> int | OutOfRange:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        return OutOfRange(text)
    return int(text)


def _decimal_or_out_of_range(text: str) -> Decimal | OutOfRange:
    try:
        return Decimal(text)
    except ArithmeticError:  # an exponent such as 1e99999999999999999999
        return OutOfRange(text)


# One decoder for every call (as json.loads keeps one for its defaults): building
# a decoder, and its C scanner, costs as much as decoding a small message.
_DECODER: Final = json.JSONDecoder(
    parse_float=_decimal_or_out_of_range, parse_int=_bounded_int, parse_constant=_reject_constant
)


def decode_json(data: str | bytes) -> object:
    """Decode a JSON document; raise :class:`ParseError` for anything that is not sane JSON.

    ``NaN``/``Infinity`` are rejected, and non-integral numbers become
    :class:`~decimal.Decimal` (exact). A number too large to build (an
    integer longer than ``MAX_JSON_INT_DIGITS`` digits, an exponent
    ``Decimal`` refuses) becomes an :class:`OutOfRange` in its place, which
    every field reader refuses: one bad value costs its own field, not the
    whole document.
    """
    # What json.loads does before decoding.
    if isinstance(data, str) and data.startswith("\ufeff"):
        raise ParseError("invalid JSON: unexpected UTF-8 BOM")
    try:
        text = data if isinstance(data, str) else data.decode(json.detect_encoding(data), "surrogatepass")
        return _DECODER.decode(text)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ParseError(f"invalid JSON: {exc}") from exc
    except ArithmeticError as exc:  # Decimal() refusing an exponent such as 1e99999999999999999999
        raise ParseError("invalid JSON: a number out of range") from exc


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, OutOfRange):
        return "a number out of range"
    return type(value).__name__


class Fields:
    """Reads typed fields out of one JSON object, collecting discrepancies.

    ``what`` names the object in messages (``"order"``, ``"fill"``); call
    :meth:`identify` once its id is known so discrepancies name it precisely.
    """

    __slots__ = ("_data", "problems", "what")

    def __init__(self, payload: object, what: str) -> None:
        if not isinstance(payload, Mapping):
            raise ParseError(f"{what} must be a JSON object, got {_type_name(payload)}")
        self._data: Mapping[Any, Any] = payload
        self.what = what
        self.problems: list[Discrepancy] = []

    def identify(self, name: str) -> None:
        """Name the object in later messages, e.g. ``"order 123"``."""
        self.what = name

    def has(self, name: str) -> bool:
        """True when the field is present and not null or ``""``."""
        value = self._data.get(name)
        return value is not None and value != ""

    def _fail(self, name: str, expected: str, value: object) -> ParseError:
        return ParseError(f"{self.what}: field {name!r} must be {expected}, got {excerpt(value)}", field=name)

    def _missing(self, name: str) -> ParseError:
        return ParseError(f"{self.what}: required field {name!r} is missing", field=name)

    # -- text ---------------------------------------------------------------

    def text(self, name: str) -> str:
        """A required, non-empty string (integers are accepted and converted)."""
        value = self.optional_text(name)
        if value is None:
            raise self._missing(name)
        return value

    def optional_text(self, name: str) -> str | None:
        """A string, or ``None`` when absent, null or ``""``."""
        value = self._data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_INT:
                raise self._fail(name, "a string", value)
            return str(value)
        if not isinstance(value, str):
            raise self._fail(name, "a string", value)
        if len(value) > MAX_TEXT_CHARS:
            raise self._fail(name, f"a string of at most {MAX_TEXT_CHARS} characters", value)
        if not value.isascii() and not _is_unicode(value):
            raise self._fail(name, "valid Unicode text", value)
        return value

    def text_or_empty(self, name: str) -> str:
        """A string, ``""`` when absent."""
        return self.optional_text(name) or ""

    # -- numbers ------------------------------------------------------------

    def decimal(self, name: str) -> Decimal:
        """A required finite decimal."""
        value = self.optional_decimal(name)
        if value is None:
            raise self._missing(name)
        return value

    def optional_decimal(self, name: str) -> Decimal | None:
        """A finite decimal, or ``None`` when absent, null or ``""``.

        Strings must be plain decimal literals (no ``NaN``, ``inf``,
        underscores or spaces); JSON numbers are accepted too.
        """
        value = self._data.get(name)
        if value is None or value == "":
            return None
        expected = "a decimal string"
        if isinstance(value, bool):
            raise self._fail(name, expected, value)
        try:
            if isinstance(value, str):
                if len(value) > MAX_NUMBER_CHARS or not _DECIMAL_RE.fullmatch(value):
                    raise self._fail(name, expected, value)
                number = Decimal(value)
            elif isinstance(value, int):
                if abs(value) > 10**MAX_DECIMAL_EXPONENT:
                    raise self._fail(name, expected, value)
                number = Decimal(value)
            elif isinstance(value, Decimal):
                number = value
            elif isinstance(value, float):
                number = Decimal(repr(value))
            else:
                raise self._fail(name, expected, value)
        except (InvalidOperation, ValueError, OverflowError) as exc:
            raise self._fail(name, expected, value) from exc
        if not number.is_finite():
            raise self._fail(name, "a finite decimal", value)
        if number and abs(number.adjusted()) > MAX_DECIMAL_EXPONENT:
            raise self._fail(name, f"a decimal within 1e±{MAX_DECIMAL_EXPONENT}", value)
        return number

    def integer(self, name: str, *, minimum: int = 0) -> int:
        """A required integer >= ``minimum``."""
        value = self.optional_integer(name, minimum=minimum)
        if value is None:
            raise self._missing(name)
        return value

    def optional_integer(self, name: str, *, minimum: int = 0) -> int | None:
        """An integer (JSON number or numeric string), or ``None`` when absent, null or ``""``.

        Integral floats/decimals are accepted; fractions, booleans and values
        outside ``[minimum, 2**63-1]`` are not.
        """
        value = self._data.get(name)
        if value is None or value == "":
            return None
        expected = f"an integer >= {minimum}"
        number: int
        if isinstance(value, bool):
            raise self._fail(name, expected, value)
        if isinstance(value, int):
            number = value
        elif isinstance(value, str):
            if len(value) > MAX_NUMBER_CHARS or not _INT_RE.fullmatch(value):
                raise self._fail(name, expected, value)
            number = int(value)
        elif isinstance(value, (float, Decimal)):
            # Bounded before int(): int(Decimal("1e400000")) builds a 400,000-digit
            # integer, which takes seconds (minutes for a longer exponent).
            if isinstance(value, Decimal) and value.is_finite() and value and value.adjusted() > _MAX_INT_DIGITS:
                raise self._fail(name, expected, value)
            try:
                is_integral = value == int(value)
            except (ValueError, OverflowError, InvalidOperation) as exc:
                raise self._fail(name, expected, value) from exc
            if not is_integral:
                raise self._fail(name, expected, value)
            number = int(value)
        else:
            raise self._fail(name, expected, value)
        if number < minimum or number > MAX_INT:
            raise self._fail(name, expected, value)
        return number

    # -- enums --------------------------------------------------------------

    def enum(self, name: str, mapping: Mapping[str, E], unknown: E) -> E:
        """Map a required enum string; an unknown value gives ``unknown`` plus a discrepancy."""
        raw = self.optional_text(name)
        if raw is None:
            raise self._missing(name)
        return self.map_value(name, raw, mapping, unknown)

    def optional_enum(self, name: str, mapping: Mapping[str, E], unknown: E, absent: E) -> E:
        """Like :meth:`enum`, but an absent field gives ``absent`` (no discrepancy)."""
        raw = self.optional_text(name)
        if raw is None:
            return absent
        return self.map_value(name, raw, mapping, unknown)

    def map_value(self, name: str, raw: str, mapping: Mapping[str, E], unknown: E) -> E:
        """Look ``raw`` up in ``mapping`` (case-insensitively); record a discrepancy if absent."""
        found = mapping.get(raw.upper())
        if found is not None:
            return found
        self.unknown_value(name, raw, expected=sorted(mapping))
        return unknown

    def unknown_value(self, name: str, raw: str, *, expected: list[str]) -> None:
        """Record an ``UNKNOWN_VALUE`` discrepancy for ``name``."""
        self.problems.append(
            Discrepancy(
                kind=DiscrepancyKind.UNKNOWN_VALUE,
                subject=self.what,
                detail=f"unknown {name} {raw!r}; recorded as unknown",
                expected=", ".join(expected),
                seen=raw,
                severity=Severity.WARNING,
            )
        )
