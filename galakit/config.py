"""The settings of a run, as one validated dataclass, and the named presets.

Every hyperparameter lives here with its help text (the CLI is generated from these fields), and a bad value
fails at construction with a ``ValueError`` that names the field, the value received and what is accepted
(``galakit.validation``). A config is frozen: change a copy with ``cfg.replace(lr=1e-3)``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galakit.validation import Described, InvalidValue, check_choice, check_float, check_int, fail


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class Config:
    """Settings of one training run. Defaults are the A2C hyperparameters of the official GALA code.

    Build one directly, or from a preset: ``Config.preset("atari", env_id="BreakoutNoFrameskip-v4")``. A config
    is frozen (``cfg.lr = 0`` raises ``FrozenInstanceError``): ``cfg.replace(lr=0)`` is a validated copy. It is
    picklable, so it can be sent to worker processes, and ``Config(**cfg.to_dict())`` rebuilds it from plain data.

    ``topology`` is a name (``"ring"``), a ``galakit.gossip.topology.Schedule``, or a networkx graph on the nodes
    0..num_learners−1 (a ``DiGraph`` edge (j, i) means "j sends to i"; with a ``weight`` on every edge, the
    weights are W's entries, self-loops included, and with none, uniform weights 1/(out-degree + 1)). A graph is
    kept as the `Schedule` it makes, and `to_dict` writes a schedule as plain data (`Schedule.to_dict`).
    """

    # -- what to train on
    env_id: str = _help("Environment id: any ALE game (e.g. PongNoFrameskip-v4, ALE/Breakout-v5) or gymnasium id.",
                        default="CartPole-v1")
    algo: str = _help("'gala' (gossip), 'a2c' (independent learners), 'allreduce' (averaged gradients) or "
                      "'a3c' (shared model, Hogwild).", default="a2c")
    total_timesteps: int = _help("Agent steps to train for, summed over all simulators of all learners "
                                 "(1 step = 4 Atari frames).",
                                 default=100_000)
    num_envs: int = _help("Simulators per learner (the vector of environments stepped together).", default=16)
    num_steps: int = _help("Rollout length n: steps per simulator between two updates (n-step returns).",
                           default=5)
    # -- several learners
    num_learners: int = _help("Learner processes (each with its own num_envs simulators).", default=1)
    topology: Any = _help("GALA communication graph: a name in galakit.gossip.topology.TOPOLOGIES ('ring' = "
                          "directed ring), a Schedule, or a networkx graph on the nodes 0..num_learners-1.",
                          default="ring")
    peers: int = _help("Out-peers per learner and gossip step, for rings (GALA's default: 1).", default=1)
    sync_freq: int | None = _help("GALA bounded staleness: block after this many consecutive updates without a "
                                  "fresh message; 0 = always (synchronous gossip); None = never.", default=None)
    push_sum: bool = _help("Gossip push-sum weights too (exact averaging on non-doubly-stochastic graphs).",
                           default=False)
    identical_init: bool = _help("Start every learner from the same parameters (GALA). False: each learner draws "
                                 "its own, to watch gossip bring them together.", default=True)
    gossip_transport: str = _help("How GALA messages travel: 'shared_memory' (learners galakit starts on one "
                                  "machine), 'gloo' (torch.distributed, any machines) or 'auto' (shared "
                                  "memory when galakit starts the learners, gloo under torchrun).",
                                  default="auto")
    gossip_policy: str = _help("GALA asynchronous gossip: what a write does to a message its receiver has not read "
                               "yet. 'latest': the newest replaces it (the freshest parameters are mixed); 'skip': the "
                               "sender skips writing while its previous message is unread (the official code). "
                               "sync_freq=0 and push_sum keep every message whatever this says.", default="latest")
    diag_interval: int = _help("Measure the learners' distances to their average every this many updates "
                               "(0: off).", default=0)
    start_method: str = _help("multiprocessing start method for learner processes: spawn or forkserver.",
                              default="spawn")
    slow_learners: tuple[int, ...] = _help("Ranks whose simulators are slowed down on purpose (stragglers).",
                                           default=())
    slowdown: float = _help("How many times slower the slow learners' simulators run.", default=1.0)
    # -- A2C
    lr: float = _help("RMSProp learning rate.", default=7e-4)
    lr_decay: bool = _help("Decay the learning rate linearly to 0 over the run.", default=False)
    gamma: float = _help("Discount factor γ.", default=0.99)
    gae_lambda: float | None = _help("GAE λ; None gives plain n-step bootstrapped returns (the paper's A2C).",
                                     default=None)
    value_coef: float = _help("Weight of the value (critic) loss.", default=0.5)
    entropy_coef: float = _help("Weight of the entropy bonus.", default=0.01)
    max_grad_norm: float = _help("Clip the global gradient norm to this value.", default=0.5)
    rms_alpha: float = _help("RMSProp smoothing constant α.", default=0.99)
    rms_eps: float = _help("RMSProp ε.", default=1e-5)
    # -- environment signal (None = the usual choice for the env: on for Atari, off otherwise)
    clip_rewards: bool | None = _help("Learn from sign(reward); raw scores are still reported.", default=None)
    episodic_life: bool | None = _help("End the learning episode at each life loss (Atari).", default=None)
    env_backend: str = _help("Simulator backend: auto, ale_vector, sync or async.", default="auto")
    repeat_action_probability: float | None = _help(
        "Sticky actions (Atari): the chance that the emulator repeats the previous action instead of the new one. "
        "None = the id's own: 0.25 for ALE/...-v5, 0 for ...NoFrameskip-v4 (the paper's).", default=None)
    # -- model
    hidden_sizes: tuple[int, ...] = _help("Hidden layer sizes of the MLP (vector observations only).",
                                          default=(64, 64))
    # -- machine
    seed: int = _help("Seed for parameters, sampling and simulators (learner r samples with seed + 7919·r, "
                      "its simulator i gets seed + r·num_envs + i; all below 2**32).", default=1)
    device: str = _help("'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'.", default="auto")
    torch_threads: int = _help("torch intra-op threads; 0 picks all cores.", default=0)
    env_threads: int = _help("Native ALE simulator threads; 0 picks all cores.", default=0)
    # -- bookkeeping
    run_dir: str | None = _help("Where logs and checkpoints go (a new run needs a directory without another run "
                                "in it); default runs/<run_name>.", default=None)
    run_name: str | None = _help("Run name; default <env>__<algo>__<seed>__<unix time>.", default=None)
    log_interval: int = _help("Write a progress row every this many updates.", default=10)
    checkpoint_interval: int = _help("Save a checkpoint every this many updates (0: only at the end).",
                                     default=1000)
    keep_checkpoints: int = _help("How many recent checkpoints to keep on disk.", default=3)
    resume: str | None = _help("Checkpoint file or run directory to continue from.", default=None)
    tensorboard: bool = _help("Write TensorBoard event files.", default=True)
    progress: bool = _help("Show a progress bar.", default=True)
    stall_timeout: float = _help("Stop a run whose learners have all made no progress for this many seconds (one "
                                 "is frozen and the others wait for it), naming that one; 0: never.",
                                 default=300.0)

    def __post_init__(self) -> None:
        # frozen: the normalised values are written past the dataclass's own __setattr__, before validation
        for name in ("hidden_sizes", "slow_learners"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "topology", _as_topology(self.topology))
        if isinstance(self.gossip_policy, str):  # a galakit.gossip.rule.WritePolicy member, stored as plain text
            object.__setattr__(self, "gossip_policy", str(self.gossip_policy))
        validate(self)

    # -- constructors and views
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Config:
        """A named preset (see ``PRESETS``) with some fields overridden."""
        check_choice("preset", name, sorted(PRESETS))
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data (what a checkpoint stores): a custom topology as its `Schedule.to_dict`
        description, which ``Config(**d)`` accepts back."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not isinstance(self.topology, str):
            d["topology"] = self.topology.to_dict()
        return d

    @property
    def batch_size(self) -> int:
        """Transitions per update: num_steps × num_envs."""
        return self.num_steps * self.num_envs

    @property
    def num_updates(self) -> int:
        """Updates of each learner: total_timesteps // (batch_size × num_learners), at least 1."""
        return max(1, self.total_timesteps // (self.batch_size * self.num_learners))

    def resolved_run_name(self) -> str:
        if self.run_name:
            return self.run_name
        env = self.env_id.replace("/", "_")
        return f"{env}__{self.algo}__{self.seed}__{int(time.time())}"


PRESETS: dict[str, dict[str, Any]] = {
    # The official GALA code's A2C on Atari: 16 simulators × 5 steps, RMSProp 7e-4, 10M agent steps (40M frames).
    "atari": dict(env_id="PongNoFrameskip-v4", num_envs=16, num_steps=5, lr=7e-4, gamma=0.99,
                  entropy_coef=0.01, value_coef=0.5, total_timesteps=10_000_000),
    # A small, fast problem for tests and tutorials: solves CartPole-v1 (mean return ≥ 195) in ~100k steps.
    "cartpole": dict(env_id="CartPole-v1", num_envs=8, num_steps=5, lr=7e-4, gamma=0.99,
                     entropy_coef=0.0, value_coef=0.5, total_timesteps=150_000, checkpoint_interval=0),
}

ALGOS = ("a2c", "gala", "allreduce", "a3c")
START_METHODS = ("spawn", "forkserver")
ENV_BACKENDS = ("auto", "ale_vector", "sync", "async")
GOSSIP_TRANSPORTS = ("auto", "shared_memory", "gloo")
GOSSIP_POLICIES = ("latest", "skip")  # galakit.gossip.rule.ASYNC_POLICIES (a test checks they agree)

# Simulators per learner. An Atari simulator costs ~3 MB (the ALE emulator, measured at 1.5 MB, plus its share of
# the rollout and of the update's activations), so 4096 of them are ~12 GB in one learner; GALA uses 16, and a
# bigger batch is better spread over learners.
MAX_NUM_ENVS = 4096
# numpy's seeding (np.random.seed, which every learner calls) accepts [0, 2**32).
SEED_LIMIT = 2**32
# Learner r seeds its sampling with seed + 7919·r (galakit.rl.learner, so learners draw different actions).
LEARNER_SEED_STRIDE = 7919
# Memory of one learner process: a spawned learner of the cartpole preset (GALA, 2 learners) measured 335 MB RSS
# (266 MB PSS) once training; most of it is torch. Atari learners need more (see MAX_NUM_ENVS).
LEARNER_MEMORY_MB = 350
# Each learner gets max(1, cores // learners) threads; beyond a few per core they only queue for the CPU (64
# learners on 2 cores spend a minute just importing torch).
LEARNERS_PER_CORE = 8


def largest_derived_seed(cfg: Config) -> int:
    """The largest seed a run derives from ``cfg.seed``: learner r samples with seed + 7919·r, its simulator i
    is seeded seed + r·num_envs + i (r < num_learners, global ranks under torchrun)."""
    n = cfg.num_learners
    return cfg.seed + max(LEARNER_SEED_STRIDE * (n - 1), n * cfg.num_envs - 1)


def local_learners(world_size: int) -> int:
    """Learners sharing this machine: torchrun says so in LOCAL_WORLD_SIZE, galakit starts them all here."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", world_size))


def memory_mb() -> int:
    """This machine's memory in MB, or its container's limit (cgroup v2) when lower. Total, not available:
    available memory falls as learners start, and every learner validates its config again."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 2**50
    cgroup = Path("/sys/fs/cgroup/memory.max")
    limit = cgroup.read_text().strip() if cgroup.is_file() else "max"
    return min(total, int(limit) if limit.isdigit() else total) // 2**20


def max_local_learners() -> int:
    """The most learner processes galakit runs on this machine: one per ``LEARNER_MEMORY_MB`` of memory, and
    at most ``LEARNERS_PER_CORE`` per core. More learners run across machines (torchrun)."""
    return max(1, min(memory_mb() // LEARNER_MEMORY_MB, LEARNERS_PER_CORE * (os.cpu_count() or 1)))


def _check_optional_bool(cfg: Config, name: str) -> None:
    if getattr(cfg, name) not in (None, True, False):
        fail(name, getattr(cfg, name), "True, False or None (automatic)")


def validate(cfg: Config) -> None:
    """Raise ``ValueError`` naming the first field whose value is not accepted."""
    if not isinstance(cfg.env_id, str) or not cfg.env_id:
        fail("env_id", cfg.env_id, "a non-empty environment id string")
    check_choice("algo", cfg.algo, ALGOS)
    check_choice("env_backend", cfg.env_backend, ENV_BACKENDS)
    for name in ("total_timesteps", "num_envs", "num_steps", "log_interval", "keep_checkpoints", "num_learners",
                 "peers"):
        check_int(name, getattr(cfg, name), 1)
    for name in ("seed", "torch_threads", "env_threads", "checkpoint_interval", "diag_interval"):
        check_int(name, getattr(cfg, name), 0)
    if cfg.num_envs > MAX_NUM_ENVS:
        fail("num_envs", cfg.num_envs, f"an int in [1, {MAX_NUM_ENVS}] per learner (an Atari simulator costs "
             "~3 MB; for a bigger batch, add learners)")
    _validate_learners(cfg)
    _check_seeds(cfg)
    check_float("lr", cfg.lr, 0.0, 10.0)
    check_float("gamma", cfg.gamma, 0.0, 1.0)
    if cfg.gae_lambda is not None:
        check_float("gae_lambda", cfg.gae_lambda, 0.0, 1.0)
    for name in ("value_coef", "entropy_coef"):
        check_float(name, getattr(cfg, name), 0.0, 1e6)
    check_float("max_grad_norm", cfg.max_grad_norm, 0.0, 1e9, low_open=True)
    check_float("rms_alpha", cfg.rms_alpha, 0.0, 1.0)
    check_float("rms_eps", cfg.rms_eps, 0.0, 1.0, low_open=True)
    for name in ("lr_decay", "tensorboard", "progress", "push_sum", "identical_init"):
        if not isinstance(getattr(cfg, name), bool):
            fail(name, getattr(cfg, name), "True or False")
    _check_optional_bool(cfg, "clip_rewards")
    _check_optional_bool(cfg, "episodic_life")
    check_float("stall_timeout", cfg.stall_timeout, 0.0, 1e9)
    if cfg.repeat_action_probability is not None:
        check_float("repeat_action_probability", cfg.repeat_action_probability, 0.0, 1.0)
    if not (isinstance(cfg.hidden_sizes, tuple) and cfg.hidden_sizes
            and all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in cfg.hidden_sizes)):
        fail("hidden_sizes", cfg.hidden_sizes, "a non-empty tuple of positive ints")
    if not isinstance(cfg.device, str) or not (cfg.device in ("auto", "cpu", "cuda")
                                               or (cfg.device.startswith("cuda:") and cfg.device[5:].isdigit())):
        fail("device", cfg.device, "'auto', 'cpu', 'cuda' or 'cuda:N'")
    for name in ("run_dir", "run_name", "resume"):
        value = getattr(cfg, name)
        if value is not None and not isinstance(value, (str, os.PathLike)):
            fail(name, value, "a path string or None")


def _validate_learners(cfg: Config) -> None:
    check_choice("start_method", cfg.start_method, START_METHODS)
    _check_topology(cfg)
    check_choice("gossip_transport", cfg.gossip_transport, GOSSIP_TRANSPORTS)
    check_choice("gossip_policy", cfg.gossip_policy, GOSSIP_POLICIES)
    if cfg.sync_freq is not None:
        check_int("sync_freq", cfg.sync_freq, 0)
    _check_local_learners(cfg)
    _check_peers_apply(cfg)
    if cfg.algo == "gala" and cfg.num_learners > 1 and cfg.peers >= cfg.num_learners:
        fail("peers", cfg.peers, f"an int in [1, num_learners - 1] = [1, {cfg.num_learners - 1}]")
    if not (isinstance(cfg.slow_learners, tuple)
            and all(isinstance(r, int) and 0 <= r < cfg.num_learners for r in cfg.slow_learners)):
        fail("slow_learners", cfg.slow_learners, f"a tuple of learner ranks in [0, {cfg.num_learners - 1}]")
    check_float("slowdown", cfg.slowdown, 1.0, 1e6)


def _topology_names() -> str:
    from galakit.gossip.topology import TOPOLOGIES  # networkx is only needed once a config is checked

    return ", ".join(repr(name) for name in TOPOLOGIES)


def _topologies_accepted() -> str:
    return f"a name in {_topology_names()}, a galakit.gossip.topology.Schedule or a networkx graph"


def _as_topology(value: Any) -> Any:
    """``Config.topology`` as it is kept: a name stays a name (checked by `validate`); a `Schedule` stays itself;
    a networkx graph (`from_networkx`, weights: its own on every edge, or uniform) or a `Schedule.to_dict`
    description (a checkpoint's config) becomes a `Schedule`."""
    if isinstance(value, str):
        return value
    import networkx as nx

    from galakit.gossip.topology import Schedule, from_networkx, shown

    try:
        if isinstance(value, Schedule):
            return value
        if isinstance(value, nx.Graph):
            return from_networkx(value, weights="auto")
        if isinstance(value, dict):
            return Schedule.from_dict(value)
    except InvalidValue as err:  # reported under this field, with the graph's own reason
        fail("topology", shown(value), err.accepted, err.why)
    fail("topology", value, _topologies_accepted())


def _check_topology(cfg: Config) -> None:
    """A named topology exists; a graph has one node per learner (a config of one learner built from a run's, as
    for its consensus model, names a topology instead: one learner never gossips)."""
    from galakit.gossip.topology import TOPOLOGIES

    n = cfg.num_learners
    if isinstance(cfg.topology, str) and cfg.topology not in TOPOLOGIES:
        fail("topology", cfg.topology, _topologies_accepted())
    if not isinstance(cfg.topology, str) and cfg.topology.n != n:
        name = "" if cfg.topology.name == "custom" else f" {cfg.topology.name!r}"
        fail("topology", Described(f"a graph{name} with {cfg.topology.n} nodes"), f"a graph on the nodes "
             f"0..{n - 1}, or a name in {_topology_names()}", f"num_learners is {n}")


def _check_local_learners(cfg: Config) -> None:
    local = local_learners(cfg.num_learners)
    if local == 1:
        return
    limit = max_local_learners()
    if local > limit:
        here = f"{local} on this machine, torchrun's LOCAL_WORLD_SIZE" if local != cfg.num_learners else ""
        fail("num_learners", cfg.num_learners, f"at most {limit} learners on this machine: each process needs "
             f"~{LEARNER_MEMORY_MB} MB ({memory_mb()} MB here) and more than {LEARNERS_PER_CORE} per core "
             f"({os.cpu_count()} cores here) only wait for the CPU; run more across machines with torchrun", here)


def _check_peers_apply(cfg: Config) -> None:
    """``peers`` is an option of some named topologies only (the rings); elsewhere, a custom graph included, it
    would be silently ignored."""
    from galakit.gossip.topology import TAKE_PEERS

    if cfg.peers != 1 and not (isinstance(cfg.topology, str) and cfg.topology in TAKE_PEERS):
        what = f"topology {cfg.topology!r}" if isinstance(cfg.topology, str) else "a custom graph"
        fail("peers", cfg.peers, f"1 with {what} (only {', '.join(TAKE_PEERS)} take peers)")


def _check_seeds(cfg: Config) -> None:
    top = largest_derived_seed(cfg)
    if top >= SEED_LIMIT:
        offset = top - cfg.seed
        fail("seed", cfg.seed, f"an int in [0, 2**32 - 1 - {offset}] = [0, {SEED_LIMIT - 1 - offset}]: numpy "
             "takes seeds below 2**32, and this run derives seeds up to seed + "
             f"{offset} (learner r: seed + {LEARNER_SEED_STRIDE}·r; its simulator i: seed + r·num_envs + i)")
