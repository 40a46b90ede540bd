"""``python -m reconcile_core`` is the ``reconcile`` command (handy when scripts are not on PATH)."""

from __future__ import annotations

import sys

from reconcile_core._cli import main

sys.exit(main())
