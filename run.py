"""``python -m run``: Beamline's thin driver.  ``python -m run --help`` lists every flag."""

import logging
import sys

from beam_pipeline.driver import main

if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(main())
