"""Shared test set-up. This directory is on sys.path (pytest puts a root conftest's directory there), so test
modules in the subfolders, and learners they spawn, import the helper environments ``faulty_env`` and
``scripted_env`` and the shared helpers of ``support`` (the tiny config, the learners' parameters, the torchrun
command)."""

import galakit  # noqa: E402, F401  (before any test module imports torch: galakit/runtime/threads.py)
