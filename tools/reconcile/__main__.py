"""``python -m tools.reconcile --run_id R`` (see :mod:`tools.reconcile.command`)."""

import sys

from tools.reconcile.command import main

__all__: list[str] = []

sys.exit(main())
