"""``python -m tools.main_job`` (``./run_local.sh``): see ``tools.main_job.command``."""

import sys

from tools.main_job.command import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
