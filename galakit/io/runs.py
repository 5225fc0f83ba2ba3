"""Runs you can reload: ``load_run(run_dir)`` rebuilds, from the files a run left, the ``Metrics`` that
``galakit.train`` returned; ``save_config`` writes the run's settings there when it starts.

Any run directory will do (the layout is `galakit.io.rundir`'s): a run of one learner or of several (spawned by
``galakit.train``, by ``galakit train``, or one learner per process under torchrun), finished, stopped or still
running. What the live ``Metrics`` held, ``load_run`` finds on disk:

=================  ==========================================================================================
``episodes``       each learner's ``episodes.csv`` (rank from its folder)
``progress``       each learner's ``progress.csv`` (the same keys, ints as ints, floats exactly, blank = None)
``consensus``      ``consensus.csv`` (``distance_to_average`` and ``updates``: one column per learner)
``checkpoint``     the newest of ``consensus/`` (several learners: their average θ̄) or of ``checkpoints/``
``config``         ``config.json`` (runs written before it existed: learner 0's newest checkpoint's config)
``run_dir``        the directory given
=================  ==========================================================================================

Games and rows come in (global step, rank) order (``Metrics.in_step_order``): a live run of several learners
has them in the order they arrived, which no file records. A resumed run's files hold the whole run, where its
live ``Metrics`` rows start at the resumption.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from galakit.config import Config
from galakit.io import checkpoint as ckpt
from galakit.io.metrics import Metrics, read_consensus, read_episodes, read_progress
from galakit.io.rundir import RunDir
from galakit.validation import fail

RUN_DIR_ACCEPTED = ("a run directory: one holding config.json, progress.csv, episodes.csv or checkpoints/ (a run "
                    "of one learner), or learner_<rank>/ folders holding them (a run of several)")


def save_config(cfg: Config, learner_dir: str | Path, rank: int = 0, world_size: int = 1) -> Path | None:
    """Write ``cfg`` to the run's ``config.json`` (learner 0 only; the others return None). ``learner_dir`` is the
    learner's folder, ``learner_<rank>/`` in a run of several. A resumed run writes its own config over the old."""
    if rank != 0:
        return None
    path = RunDir.of_learner(learner_dir, world_size).config
    text = json.dumps(cfg.to_dict(), indent=1).encode()
    ckpt.atomic_write_bytes(path, lambda f: f.write(text))
    return path


def load_config(run_dir: str | Path) -> Config | None:
    """The run's ``Config``: from its ``config.json``; for a run written before galakit wrote one, from learner
    0's newest checkpoint; None when neither is there yet."""
    run = RunDir(run_dir)
    if run.config.is_file():
        saved = json.loads(run.config.read_text())
    else:
        first = run.learners()[0]
        if not ckpt.list_checkpoints(first.checkpoints):
            return None
        saved = ckpt.load_checkpoint(first.path)["config"]  # a damaged newest file: the one before, with a warning
    return Config(**{f.name: saved[f.name] for f in dataclasses.fields(Config) if f.name in saved})


def newest_checkpoint(run_dir: str | Path) -> str | None:
    """The checkpoint a run's ``Metrics.checkpoint`` names: the learners' average (``consensus/``) for a run of
    several, the learner's newest for a run of one; None before it is saved."""
    run = RunDir(run_dir)
    folder = run.consensus_dir if run.learner_ranks() else run.learners()[0].checkpoints
    found = ckpt.list_checkpoints(folder)
    return str(found[-1]) if found else None


def load_run(path: str | Path) -> Metrics:
    """The ``Metrics`` of the run in directory ``path``, rebuilt from its files (module docstring).

    Raises ``ValueError`` ``path: got …; accepted: a run directory …`` when ``path`` holds no run.
    """
    run = RunDir(path)
    if not run.root.is_dir():
        fail("path", str(path), RUN_DIR_ACCEPTED, "a file" if run.root.exists() else "no such directory")
    if not run.holds_a_run():
        fail("path", str(path), RUN_DIR_ACCEPTED, "no run has written there")
    metrics = Metrics(run_dir=str(run.root), checkpoint=newest_checkpoint(run.root), config=load_config(run.root),
                      consensus=read_consensus(run.consensus_csv))
    for learner in run.learners():
        metrics.episodes += read_episodes(learner.episodes, learner.rank)
        metrics.progress += read_progress(learner.progress)
    return metrics.in_step_order()
