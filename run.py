"""``python -m run``: Beamline's thin driver.  ``python -m run --help`` lists every flag."""

import logging
import sys

if __name__ == "__main__":
    # Configured before Beam is imported: its import logs a warning, which would set up
    # the root logger first and make this call a no-op (Beamline's own INFO lines were
    # lost that way).  Beam and the job servers it starts log at WARNING and above.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("beam_pipeline").setLevel(logging.INFO)

    from beam_pipeline.driver import main

    sys.exit(main())
