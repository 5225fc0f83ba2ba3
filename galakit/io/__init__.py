"""What a run leaves on disk, and reading it back: the run directory (``rundir``), checkpoints (``checkpoint``),
metrics (``metrics``: CSV and TensorBoard writers, ``Metrics``), what watches a run (``observers``), and reloading a
finished or running run (``runs``: ``load_run``)."""
