"""The operator's tools: the main job, the reconciliation, stack administration, the
producers, drills, peak memory and the bench.  They run from the checkout
(``python -m tools.…``), import the job and never the other way round, and are not
packaged for workers (``setup.py``)."""
