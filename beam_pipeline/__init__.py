"""Beamline: the pipeline graph, its options, and the local stack it runs against."""
