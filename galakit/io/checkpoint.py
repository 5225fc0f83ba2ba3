"""Checkpoints: written atomically (a crash keeps the last good one), found again by run directory, and loaded
without ever running code from the file.

A checkpoint is a dict saved with ``torch.save``: the config, the update counter, the model and optimizer state,
every random number generator, the current observations and (for gymnasium's in-process simulators) the
simulators' state, so that a resumed run continues exactly.

Why plain data only
-------------------
A pickle is a program: unpickling an object calls whatever its ``__reduce__`` names, so loading a checkpoint
someone sent you could run anything. galakit therefore writes tensors and plain containers only (dicts, lists,
tuples, str, int, float, bool, None) and loads with ``torch.load(..., weights_only=True)``, which builds nothing
else. What used to be pickled is translated to that form: numpy's and Python's generator states, and the
simulators (:func:`simulator_state`), whose wrappers are walked attribute by attribute.

Loading a run directory takes its newest checkpoint; when that one is truncated or damaged (a crash while copying,
a full disk), it warns and falls back to the one before. A file refused for what it holds (objects other than plain
data, or an older galakit format) stops the load instead: resuming quietly from an older file would hide it.
"""

from __future__ import annotations

import collections
import os
import pickle
import pickletools
import random
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 2  # 2: plain data, loaded with weights_only=True. 1 pickled numpy states and the simulators.
BIT_GENERATORS = ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")
_NAME = re.compile(r"^ckpt_(\d+)\.pt$")
_TEMP = ".ckpt_*.pt.tmp*"  # atomic_write_bytes's temporary files for checkpoints


class CorruptCheckpoint(ValueError):
    """A checkpoint file that cannot be read at all: truncated, damaged, or not a checkpoint."""


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# The fields a resumed run must share with the checkpoint it continues (the simulators and the network's shape).
RESUME_MUST_MATCH = ("env_id", "num_envs", "num_steps", "hidden_sizes", "algo")


@dataclass
class LearnerState:
    """What one checkpoint holds: everything a learner needs to continue exactly where it was.

    ``config`` is ``Config.to_dict()``; ``model`` / ``optimizer`` are state dicts; ``rng`` is ``rng_state()``;
    ``obs`` (num_envs, *obs_shape) is s_0 of the next rollout; ``env_state`` is ``simulator_state()`` (None for
    simulators out of reach: they start fresh games); ``episodes`` are the learner's finished games so far. A
    consensus checkpoint (the learners' average θ̄, ``consensus_of`` = n) has no optimizer, generators or
    simulators. ``path`` is where it was read from (None before it is saved).
    """

    config: dict[str, Any]
    update: int
    global_step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    obs: torch.Tensor | None = None
    env_state: dict[str, Any] | None = None
    episodes: list[Any] = field(default_factory=list)  # galakit.rl.a2c.Episode
    consensus_of: int | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``torch.save`` (episodes as (global_step, return, length) triples)."""
        state = {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in ("path", "episodes")}
        state["episodes"] = [(e.global_step, e.ret, e.length) for e in self.episodes]
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any], rank: int = 0) -> LearnerState:
        """The state ``load_checkpoint`` read; ``rank`` is given to its episodes."""
        from galakit.rl.a2c import Episode

        fields = {name: state.get(name) for name in cls.__dataclass_fields__ if name in state}
        fields["episodes"] = [Episode(*e, rank=rank) for e in state.get("episodes", [])]
        return cls(**fields)

    def save(self, directory: str | Path, keep: int = 3) -> Path:
        """Write it as ``directory/ckpt_<global_step>.pt`` (atomically; the ``keep`` newest stay)."""
        path = save_checkpoint(self.to_dict(), directory, self.global_step, keep)
        self.path = str(path)
        return path


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temporary files that a process killed mid-write left in a checkpoints ``directory`` (each as
    large as a checkpoint, and never renamed). Call it when a learner starts: a checkpoints directory has one
    writer, that learner, so no temporary file there can still be in use. Returns the files removed."""
    removed = sorted(Path(directory).glob(_TEMP)) if Path(directory).is_dir() else []
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def save_checkpoint(state: dict[str, Any], directory: str | Path, global_step: int, keep: int = 3) -> Path:
    """Write ``ckpt_<global_step>.pt`` atomically into ``directory`` and keep only the ``keep`` newest."""
    directory = Path(directory)
    path = directory / f"ckpt_{global_step:012d}.pt"
    atomic_write_bytes(path, lambda f: torch.save({"format_version": FORMAT_VERSION, **state}, f))
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def find_checkpoints(path: str | Path) -> list[Path]:
    """The checkpoint file ``path``, or those of a run directory (or its ``checkpoints/`` folder), newest first."""
    path = Path(path)
    if path.is_file():
        return [path]
    for directory in (path / "checkpoints", path):
        found = list_checkpoints(directory)
        if found:
            return found[::-1]
    raise FileNotFoundError(f"resume/checkpoint: no checkpoint file at {str(path)!r} "
                            "(expected a ckpt_*.pt file or a run directory holding checkpoints/)")


def checkpoint_step(path: str | Path) -> int:
    """The global step in a checkpoint's file name (``ckpt_<global_step>.pt``)."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"checkpoint: got {str(path)!r}; accepted: a file named ckpt_<global_step>.pt")
    return int(match.group(1))


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the newest one in a run directory (or its ``checkpoints/`` folder)."""
    return find_checkpoints(path)[0]


def resumed_steps(resume: str | Path | None, num_learners: int) -> list[int]:
    """The global step each learner resuming from ``resume`` continues from, by the name of its newest checkpoint
    (``learner_<rank>/`` of a run of several, else the file or run directory itself); [] for a new run or none."""
    if not resume:
        return []
    path = Path(resume)
    folders = [path / f"learner_{r}" for r in range(num_learners)] if (path / "learner_0").is_dir() else [path]
    try:
        return [checkpoint_step(find_checkpoint(folder)) for folder in folders]
    except (FileNotFoundError, ValueError):
        return []


RUN_FILES = ("progress.csv", "episodes.csv", "consensus.csv")


def previous_run(directory: str | Path) -> Path | None:
    """A log or checkpoint that an earlier run left in ``directory`` (or its ``learner_<rank>/`` folders), or None."""
    directory = Path(directory)
    for folder in [directory, *sorted(directory.glob("learner_*"))]:
        found = [folder / name for name in RUN_FILES if (folder / name).exists()]
        found += list_checkpoints(folder / "checkpoints") + list_checkpoints(folder / "consensus")
        if found:
            return found[0]
    return None


def check_new_run_dir(directory: str | Path) -> None:
    """A new run (not a resumed one) gets a directory of its own: in another run's, the logs would mix and the
    pruning of old checkpoints (by step) could delete the new run's."""
    found = previous_run(directory)
    if found is not None:
        raise ValueError(f"run_dir: got {str(directory)!r} (it holds a run: {found}); accepted: a directory "
                         f"without another run in it; continue this one with resume={str(directory)!r} (--resume), "
                         "or leave run_dir unset for a new runs/<run_name> (under torchrun, one named after "
                         "--rdzv_id)")


def new_run_dir(run_name: str, root: str | Path = "runs") -> Path:
    """Create and return ``root/run_name``, or ``root/run_name_2``, ``_3``, … when that exists (two runs started
    in the same second get the same default name; creating the directory claims it)."""
    Path(root).mkdir(parents=True, exist_ok=True)
    path, k = Path(root) / run_name, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1
            path = Path(root) / f"{run_name}_{k}"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint file ``path``, or the newest readable one of a run directory, as a dict (plus its "path").

    Loading runs no code from the file (``weights_only=True``, see the module docstring). In a run directory a
    truncated or damaged newest file is skipped with a warning naming it, for the one before.

    Raises:
        ValueError: the file (or every file of the directory) is unreadable, holds objects other than plain data,
            or was written in another checkpoint format; the message names the files.
        FileNotFoundError: no checkpoint at ``path``.
    """
    files = find_checkpoints(path)
    skipped = []
    for file in files:
        try:
            state = _load_file(file)
        except CorruptCheckpoint as err:
            if len(files) == 1:
                raise
            skipped.append(file)
            warnings.warn(f"{err}; trying the checkpoint before it", stacklevel=2)
            continue
        if skipped:
            warnings.warn(f"checkpoint: continuing from {str(file)!r}, the newest readable one "
                          f"(skipped {', '.join(repr(str(s)) for s in skipped)})", stacklevel=2)
        return state
    raise ValueError(f"resume/checkpoint: no readable checkpoint in {str(path)!r}; tried, newest first: "
                     f"{', '.join(repr(str(f)) for f in files)} (each truncated or damaged)")


def _load_file(path: Path) -> dict[str, Any]:
    """One checkpoint file, loaded as tensors and plain containers only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # something weights_only will not build: find out what, without building it
        raise _refusal(path) from None
    except Exception as err:  # truncated zip, garbage bytes, an empty file: torch says it in many ways
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} is truncated or damaged and cannot be read "
                                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'})"
                                ) from err
    version = state.get("format_version") if isinstance(state, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(f"checkpoint {str(path)!r}: not a galakit checkpoint of format {FORMAT_VERSION} "
                         f"(format_version: got {version!r})")
    state["path"] = str(path)
    return state


def _refusal(path: Path) -> ValueError:
    """Why weights_only refused ``path``: an older galakit format, Python objects, or plain damage. The pickle is
    read by ``pickletools``, which parses opcodes and never imports or calls anything."""
    scan = _scan_pickle(path)
    if scan is None:
        return CorruptCheckpoint(f"checkpoint {str(path)!r} is truncated or damaged and cannot be read")
    version, names = scan
    if version is not None and version != FORMAT_VERSION:
        return ValueError(f"checkpoint {str(path)!r} was written in galakit's checkpoint format {version}, which "
                          "pickled Python objects and cannot be loaded safely; this galakit reads format "
                          f"{FORMAT_VERSION} (tensors and plain data only): start a new run, or load it with the "
                          "galakit version that wrote it")
    return ValueError(f"checkpoint {str(path)!r} is not a plain galakit checkpoint: it holds Python objects "
                      f"({', '.join(names) or 'unknown'}), and loading those can run code; galakit loads tensors and "
                      "plain containers only (torch.load weights_only=True), so it did not load this file")


def _scan_pickle(path: Path) -> tuple[int | None, list[str]] | None:
    """(format_version, the non-torch globals the pickle names), or None when it does not parse."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
        else:
            data = path.read_bytes()
        ops = [(op, arg) for op, arg, _ in pickletools.genops(data) if "PUT" not in op.name and op.name != "MEMOIZE"]
    except Exception:
        return None
    version, names, strings = None, [], []
    for (op, arg), (_, next_arg) in zip(ops, ops[1:] + [(None, None)], strict=True):  # memo writes left out
        if op.name == "GLOBAL":
            names.append(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            names.append(".".join(strings[-2:]))
        elif isinstance(arg, str):
            strings.append(arg)
            if arg == "format_version" and isinstance(next_arg, int):
                version = next_arg
    return version, sorted({n for n in names if not n.startswith(("torch", "collections.OrderedDict"))})


# -- random number generators


def rng_state() -> dict[str, Any]:
    """Every generator a run draws from: torch (CPU and CUDA), numpy's global one, Python's; as plain data."""
    state = {"torch": torch.get_rng_state(), "numpy": to_plain(np.random.get_state(legacy=False)),
             "python": random.getstate()}  # (version, tuple of 625 ints, None): plain already
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(from_plain(state["numpy"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- plain data: what weights_only loading accepts

_PLAIN = (str, int, float, bool, type(None))


def to_plain(value: Any) -> Any:
    """``value`` as tensors and plain containers, tagged so that :func:`from_plain` rebuilds it exactly: a numpy
    array or scalar becomes a tensor, a ``np.random.Generator`` its bit generator's state, a deque a list.

    Raises:
        TypeError: anything else (an object whose state galakit does not know how to write as data).
    """
    if isinstance(value, np.generic):  # before _PLAIN: np.float64 is a float
        return {"__numpy_scalar__": torch.from_numpy(np.array(value))}
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(value.copy())}  # TypeError for object and string arrays
    if isinstance(value, np.random.Generator):
        return {"__generator__": to_plain(value.bit_generator.state)}
    if isinstance(value, collections.deque):
        return {"__deque__": [to_plain(v) for v in value], "maxlen": value.maxlen}
    if type(value) in (list, tuple):
        return type(value)(to_plain(v) for v in value)
    if type(value) is dict and all(isinstance(k, (str, int)) for k in value):
        return {k: to_plain(v) for k, v in value.items()}
    raise TypeError(f"{type(value).__qualname__} is not plain data")


def from_plain(value: Any) -> Any:
    """The inverse of :func:`to_plain`."""
    if type(value) in (list, tuple):
        return type(value)(from_plain(v) for v in value)
    if type(value) is not dict:
        return value
    if "__ndarray__" in value:
        return value["__ndarray__"].numpy().copy()
    if "__numpy_scalar__" in value:
        return value["__numpy_scalar__"].numpy()[()]
    if "__generator__" in value:
        state = from_plain(value["__generator__"])
        if state.get("bit_generator") not in BIT_GENERATORS:  # a name from the file must not pick any callable
            raise ValueError(f"checkpoint: bit_generator {state.get('bit_generator')!r}; accepted: {BIT_GENERATORS}")
        generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
        generator.bit_generator.state = state
        return generator
    if "__deque__" in value:
        return collections.deque(from_plain(value["__deque__"]), maxlen=value["maxlen"])
    return {k: from_plain(v) for k, v in value.items()}


# -- simulators


def simulator_state(env) -> dict[str, Any] | None:
    """The state of the simulators of vector env ``env`` as plain data, or None where galakit cannot read it.

    Every layer contributes: the vector wrappers (``LearningSignal``: running returns, lives), the vector env
    (its last observations, which sub-envs autoreset next), and for each sub-env every wrapper down to
    ``unwrapped`` (time-limit counters, frame stacks, the physics state, the ``np.random.Generator``). Of each
    layer the attributes that are plain data are kept (see :func:`to_plain`); objects (spaces, specs, the layer
    below) are skipped, since the freshly built env that :func:`restore_simulator_state` fills has its own. An ALE
    emulator (Atari on the gymnasium path) adds its serialized state, its RNG included.

    None for simulators outside this process, whose state galakit cannot reach: the native ALE vector env (C++
    threads) and gymnasium's ``AsyncVectorEnv`` (a worker process per sub-env). A run resumed from such a
    checkpoint starts fresh games.
    """
    vector = _layers(env)
    subs = getattr(vector[-1], "envs", None)  # SyncVectorEnv holds its sub-envs; the others do not
    if not isinstance(subs, list):
        return None
    return {"vector": [_capture(layer) for layer in vector],
            "envs": [[_capture(layer) for layer in _layers(sub)] for sub in subs]}


def restore_simulator_state(env, state: dict[str, Any]) -> None:
    """Put ``state`` (from :func:`simulator_state`) into ``env``, freshly built from the same config."""
    chains = [_layers(env)] + [_layers(sub) for sub in getattr(_layers(env)[-1], "envs", [])]
    saved = [state["vector"], *state["envs"]]
    ours = [[_class_name(layer) for layer in chain] for chain in chains]
    theirs = [[layer["class"] for layer in chain] for chain in saved]
    if ours != theirs:
        raise ValueError(f"resume: the checkpoint's simulators are {theirs} but this config builds {ours}; "
                         "env_id, num_envs and env_backend must match to continue a run")
    for chain, saved_chain in zip(chains, saved, strict=True):
        for layer, saved_layer in zip(chain, saved_chain, strict=True):
            _restore(layer, saved_layer)


def _layers(env) -> list[Any]:
    """``env`` and the layers it wraps, outermost first (each wrapper keeps the one below in ``.env``)."""
    layers = [env]
    while "env" in getattr(layers[-1], "__dict__", {}):
        layers.append(layers[-1].env)
    return layers


def _class_name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _capture(layer) -> dict[str, Any]:
    attrs = {}
    for name, value in vars(layer).items():
        try:
            attrs[name] = to_plain(value)
        except TypeError:  # an object: the fresh env has its own
            continue
    saved = {"class": _class_name(layer), "attrs": attrs}
    ale = vars(layer).get("ale")
    if hasattr(ale, "cloneState"):  # ale_py's AtariEnv: the emulator lives in C++, but serializes itself
        saved["ale_state"] = torch.frombuffer(bytearray(ale.cloneState(include_rng=True).serialize()),
                                              dtype=torch.uint8)
    return saved


def _restore(layer, saved: dict[str, Any]) -> None:
    """Set the saved attributes on the freshly built ``layer``: only those its instance or class already has
    (the file names them), never a dunder."""
    for name, value in saved["attrs"].items():
        if name.startswith("__") or not (name in vars(layer) or hasattr(type(layer), name)):
            raise ValueError(f"checkpoint: simulator state names {name!r}, which {type(layer).__name__} does not "
                             "have; accepted: a checkpoint of the same environment and wrappers")
        vars(layer)[name] = from_plain(value)
    if "ale_state" in saved:
        from ale_py import ALEState

        layer.ale.restoreState(ALEState(saved["ale_state"].numpy().tobytes()))
