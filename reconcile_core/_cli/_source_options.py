"""The options every venue command shares: which venue, where, and with which token.

Tokens come from an environment variable or a file, never from the command
line (where ``ps`` and shell history would show them), and never appear in
a message.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import os
from pathlib import Path
from typing import Any

import anyio

from reconcile_core.errors import AuthenticationError, PluginError, ReconcileError, TransportError, UsageError
from reconcile_core.plugins import load_venue
from reconcile_core.typing import StateSource, VenuePlugin

from ._paths import default_ledger_path

__all__ = [
    "add_source_arguments",
    "build_source",
    "check_source",
    "ledger_path",
    "positive_seconds",
    "read_token",
    "venue_plugin",
]

#: A token is a line of text; a token file larger than this is something else.
MAX_TOKEN_FILE = 64 * 1024


def positive_seconds(text: str) -> float:
    """An argparse ``type``: a finite number of seconds > 0 (``nan`` and ``inf`` pass a ``<= 0`` check)."""
    try:
        value = float(text)  # float ok: seconds, not money
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        msg = f"expected a positive number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("venue", help="the venue plugin's name (see 'reconcile venues')")
    where = parser.add_argument_group("where the venue is")
    where.add_argument("--env", choices=("testnet", "prod"), default="testnet", help="the venue's environment")
    where.add_argument("--rest-url", help="a custom REST base URL, e.g. a local simulator (needs --ws-url)")
    where.add_argument("--ws-url", help="a custom WebSocket URL (needs --rest-url)")
    auth = parser.add_argument_group("credentials (never on the command line)")
    auth.add_argument("--token-env", metavar="NAME", help="read the token from this variable (default: <VENUE>_TOKEN)")
    auth.add_argument("--token-file", type=Path, metavar="PATH", help="read the token from this file")
    auth.add_argument("--account", help="the account (default: the token's 'sub' claim)")
    parser.add_argument(
        "--ledger", type=Path, default=None, help=f"the SQLite ledger file (default: {default_ledger_path()})"
    )


def ledger_path(args: argparse.Namespace) -> Path:
    path: Path = args.ledger or default_ledger_path()
    return path


def read_token(args: argparse.Namespace) -> str:
    """The token, from ``--token-file`` or the environment; an actionable error if absent."""
    if args.token_file is not None:
        token = _read_token_file(args.token_file)
        if not token:
            msg = f"the token file {args.token_file} is empty"
            raise UsageError(msg)
        return token
    name = args.token_env or f"{args.venue.upper()}_TOKEN"
    token = os.environ.get(name, "").strip()
    if not token:
        msg = (
            f"no token: set the environment variable {name} to your read-only token "
            "(or use --token-env NAME / --token-file PATH)"
        )
        raise UsageError(msg)
    return token


def _read_token_file(path: Path) -> str:
    """The file's text, stripped; refused when it cannot be a token (``/dev/zero``, a binary file).

    Nothing of the content is ever shown: it may be a secret.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_TOKEN_FILE + 1)
    except OSError as exc:
        msg = f"cannot read the token file {path}: {exc.strerror or type(exc).__name__}"
        raise UsageError(msg) from None
    if len(data) > MAX_TOKEN_FILE:
        msg = f"the token file {path} is larger than {MAX_TOKEN_FILE // 1024} KiB: is it the token?"
        raise UsageError(msg)
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        msg = f"the token file {path} is not UTF-8 text"
        raise UsageError(msg) from None


def jwt_subject(token: str) -> str | None:
    """The ``sub`` claim of a JWT, without verifying it (it only names the account)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return str(subject) if isinstance(subject, str) and subject else None


def venue_plugin(args: argparse.Namespace) -> VenuePlugin:
    """The venue plugin, looked up first: an unknown name is the error to report, not the missing token."""
    return load_venue(args.venue)


def build_source(args: argparse.Namespace, plugin: VenuePlugin, token: str) -> StateSource:
    # Whether a token can read another account than the one it names is the venue's rule:
    # the plugin refuses what it knows to be wrong (Paradex: a token reads its own account).
    account = args.account or jwt_subject(token)
    if not account:
        msg = "cannot tell the account from the token; pass --account"
        raise UsageError(msg)
    options: dict[str, Any] = {"account": account, "token": token}
    if args.rest_url or args.ws_url:
        if not (args.rest_url and args.ws_url):
            msg = "--rest-url and --ws-url go together: pass both"
            raise UsageError(msg)
        for flag, url in (("--rest-url", args.rest_url), ("--ws-url", args.ws_url)):
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            allowed = ("http", "https") if flag == "--rest-url" else ("ws", "wss")
            if scheme not in allowed:
                msg = f"{flag} {url!r} is not a URL: expected {' or '.join(s + '://...' for s in allowed)}"
                raise UsageError(msg)
        options.update(env=None, rest_url=args.rest_url, ws_url=args.ws_url)
    else:
        options["env"] = args.env
    return _create_source(plugin, options, token)


def _create_source(plugin: VenuePlugin, options: dict[str, Any], token: str) -> StateSource:
    """``plugin.create_source(**options)``; what a plugin's bug raises becomes a :class:`PluginError`.

    The library's own errors pass (a plugin's ``UsageError`` about an option).
    Anything else is named with its message, the token taken out (the
    options held it), and not chained (a traceback would show the original).
    """
    failed: str | None = None
    try:
        source: object = plugin.create_source(**options)
    except ReconcileError:
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party plugin's bug, reported as such
        failed = f"{type(exc).__name__}: {str(exc).replace(token, '***')}"
    if failed is not None:
        msg = f"venue plugin {plugin.name!r} failed to create its source ({failed})"
        raise PluginError(msg)
    if not isinstance(source, StateSource):
        msg = f"venue plugin {plugin.name!r} returned {type(source).__name__} from create_source, not a StateSource"
        raise PluginError(msg)
    return source


def _explain_auth(exc: AuthenticationError) -> str:
    text = str(exc).lower()
    code = (exc.code or "").upper()
    if "GEO" in code or "40112" in code or "geo" in text:
        return "the venue refuses connections from this location (geo-block); run from an allowed region"
    if "token is expired" in text or "expired by" in text:
        return "the token has expired; create a new read-only token and set it again"
    return "the venue rejected the token (invalid or revoked); check it, or create a new read-only token"


async def check_source(source: StateSource, *, timeout: float) -> None:  # noqa: ASYNC109 - per request
    """Fail fast, with one actionable line, on a bad URL or a bad token.

    Reads the venue clock (no credentials) and the open orders (credentials).
    """
    try:
        with anyio.fail_after(timeout):
            await source.server_time()
    except TimeoutError:
        msg = f"the venue did not answer within {timeout:g} s; check the URL and your network"
        raise TransportError(msg) from None
    except TransportError as exc:
        # ``main`` says "cannot reach the venue: " once, before this.
        msg = f"{exc}; check the URL and your network"
        raise TransportError(msg) from exc
    try:
        with anyio.fail_after(timeout):
            await source.open_orders()
    except TimeoutError:
        msg = f"the venue did not answer within {timeout:g} s"
        raise TransportError(msg) from None
    except AuthenticationError as exc:
        raise AuthenticationError(_explain_auth(exc), code=exc.code, status=exc.status) from exc
