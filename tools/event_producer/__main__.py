"""``python -m tools.event_producer``: see ``tools.event_producer.command``."""

import sys

from tools.event_producer.command import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
