"""Where the CLI keeps its files by default."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["default_ledger_path", "user_data_dir"]


def user_data_dir() -> Path:
    """The per-user data directory (XDG on Linux, the platform's own elsewhere)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "reconcile"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "reconcile"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "reconcile"


def default_ledger_path() -> Path:
    """``<user data dir>/ledger.sqlite``."""
    return user_data_dir() / "ledger.sqlite"
