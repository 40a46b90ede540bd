"""``python -m reconcile_core._cli`` runs the ``reconcile`` command line."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
