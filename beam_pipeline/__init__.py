"""Beamline: the pipeline graph, its options, and the local stack it runs against."""

import logging
import warnings

# google-cloud packages (pulled in by apache-beam[gcp]) warn at import about the
# grpcio version Beam 2.71 pins: noise on every run that says nothing about the job.
# Filtered here, before any entry point of ours imports Beam.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")


class _WithoutCrcmodWarning(logging.Filter):
    """Drops Beam's import-time "crcmod package not found" warning (root logger).

    Beam's TFRecord module logs it whenever ``crcmod`` is absent; Beamline reads and
    writes no TFRecord, and the line came before every one-line error we print.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("crcmod package not found")


logging.getLogger().addFilter(_WithoutCrcmodWarning())
