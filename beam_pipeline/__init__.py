"""Beamline: the pipeline graph, its options, and the local stack it runs against."""

import warnings

# google-cloud packages (pulled in by apache-beam[gcp]) warn at import about the
# grpcio version Beam 2.71 pins: noise on every run that says nothing about the job.
# Filtered here, before any entry point of ours imports Beam.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
