"""What a run leaves on disk, and reading it back: the run directory (``rundir``), checkpoints (``checkpoint``)
and metrics (``metrics``: CSV and TensorBoard writers, ``Metrics``)."""
