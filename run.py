"""``python -m run``: Beamline's thin driver.  ``python -m run --help`` lists every flag."""

import logging
import sys
import warnings

# google-cloud packages warn at import about the grpcio version Beam 2.71 pins:
# noise on every run that says nothing about this job.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")

from beam_pipeline.driver import main  # noqa: E402 - after the warning filter

if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(main())
