"""One learner: its simulators, its actor-critic and its optimizer, looping rollout → A2C update.

``Learner`` holds the state of a run so that it can be checkpointed and resumed exactly; ``Learner.run`` is the
loop. The GALA learners of a multi-process run are this same loop plus a gossip step after each update.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from galakit.config import LEARNER_SEED_STRIDE, Config, local_learners
from galakit.io import checkpoint as ckpt
from galakit.io.metrics import Metrics, MetricsWriter
from galakit.io.rundir import RunDirClaim, claim_run_dir
from galakit.rl.a2c import Episode, RolloutBuffer, a2c_update, collect_rollout, make_optimizer
from galakit.rl.envs import make_vec_env
from galakit.rl.models import make_model
from galakit.runtime.coupling import HogwildOptimizer, flatten_into, make_coupling


def resolve_device(name: str, rank: int = 0) -> torch.device:
    """'auto' → CUDA device ``rank mod #GPUs`` when there are GPUs (several learners may share one), else CPU."""
    if name == "auto":
        name = f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: got {name!r} but CUDA is not available here; accepted: 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_env(cfg: Config, seed: int | None = None, num_threads: int | None = None):
    """The learner's vector of simulators, built from the config."""
    return make_vec_env(cfg.env_id, cfg.num_envs, cfg.seed if seed is None else seed, backend=cfg.env_backend,
                        clip_rewards=cfg.clip_rewards, episodic_life=cfg.episodic_life,
                        repeat_action_probability=cfg.repeat_action_probability,
                        num_threads=cfg.env_threads if num_threads is None else num_threads)


def initial_model(cfg: Config, rank: int, obs_shape: tuple[int, ...], num_actions: int) -> torch.nn.Module:
    """θ_0 of learner ``rank``: drawn with ``cfg.seed``, so identical on every learner (as in GALA), unless
    ``cfg.identical_init`` is False (then drawn with ``seed + rank``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # orthogonal init (a QR) rounds differently with other thread counts
    try:
        torch.manual_seed(cfg.seed if cfg.identical_init else cfg.seed + rank)
        return make_model(obs_shape, num_actions, cfg.hidden_sizes)
    finally:
        torch.set_num_threads(threads)


@dataclass
class LearnerContext:
    """What a learner process gets from its launcher besides the config (all picklable for spawn)."""

    rank: int = 0
    world_size: int = 1
    stop: Any = None                 # an Event: finish the current update, save, exit
    shared: Any = None               # a3c: SharedState (model and RMSProp statistics in shared memory)
    board: Any = None                # diagnostics: DiagnosticsBoard the parent reads
    gossip_group: Any = None         # gala: the process group gossip messages travel on (gloo transport)
    slots: Any = None                # gala on one machine: SharedSlots, the shared-memory transport
    heartbeats: Any = None           # galakit.runtime.heartbeat.Heartbeats: progress, for the supervisor's stall check


class DivergenceError(FloatingPointError):
    """A learner's parameters became NaN or infinite: it stops before sending them to a peer or saving them."""

    def __init__(self, rank: int, update: int, when: str):
        super().__init__(f"learner {rank} diverged at update {update}: its parameters are not finite {when} "
                         "(NaN or inf); it stopped without gossiping or saving them, so its newest checkpoint is "
                         "its last finite one. Try a smaller lr or max_grad_norm, or look for NaN rewards or "
                         "observations from the simulators")
        self.rank, self.update = rank, update


class Straggler:
    """Wraps a vector env so that each step takes ``slowdown`` times as long (a learner on a busy machine)."""

    def __init__(self, env, slowdown: float):
        self.env, self.slowdown = env, slowdown

    def step(self, actions):
        start = time.perf_counter()
        out = self.env.step(actions)
        time.sleep((time.perf_counter() - start) * (self.slowdown - 1))
        return out

    def __getattr__(self, name: str):
        if name == "env":  # not set yet (unpickling): do not recurse
            raise AttributeError(name)
        return getattr(self.env, name)


class Learner:
    """An A2C learner. ``Learner(cfg).run()`` trains for ``cfg.total_timesteps`` and returns the ``Metrics``.

    In a run of several learners each process builds one ``Learner`` with its ``LearnerContext``: rank r steps
    simulators seeded ``seed + r·num_envs + i``, starts from the same parameters as every other learner, and is
    coupled to the others as ``cfg.algo`` says (``galakit.runtime.coupling``).
    """

    def __init__(self, cfg: Config, callback: Callable[[dict[str, Any]], None] | None = None,
                 context: LearnerContext | None = None):
        self.cfg, self.callback = cfg, callback
        self.ctx = ctx = context or LearnerContext()
        self._claim: RunDirClaim | None = None
        self.cores = max(1, (os.cpu_count() or 1) // local_learners(ctx.world_size))  # this learner's share
        torch.set_num_threads(cfg.torch_threads or self.cores)
        self.device = resolve_device(cfg.device, ctx.rank)
        state = ckpt.load_checkpoint(self._resume_path()) if cfg.resume else None
        if state:
            _check_resumable(cfg, state)
        self.run_dir = self._run_dir(state)  # claimed (or refused) before any simulator is built
        try:
            self._build(state)
        except BaseException:  # free the simulators and the run directory: a corrected retry must not find them
            self.close()
            raise

    def _build(self, state: dict[str, Any] | None) -> None:
        """The simulators, θ_0, the optimizer and the rollout buffer; then the checkpoint's state, if resuming."""
        cfg, ctx = self.cfg, self.ctx
        self.env = self._build_env()
        if state and state["env_state"] is not None:  # the simulators continue their games exactly
            ckpt.restore_simulator_state(self._simulators(), state["env_state"])
        obs_space, act_space = self.env.single_observation_space, self.env.single_action_space
        self.model = initial_model(cfg, ctx.rank, obs_space.shape, int(act_space.n)).to(self.device)
        seed_everything(cfg.seed + LEARNER_SEED_STRIDE * ctx.rank)  # each learner samples its own actions
        self.optimizer = self._make_optimizer()
        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        self.buf = RolloutBuffer(cfg.num_steps, cfg.num_envs, obs_space.shape, obs_dtype, self.device)
        self.update = 0
        self.metrics = Metrics()
        self._unsent: list[Episode] = []
        self._max_step_norm = 0.0
        if cfg.diag_interval:  # the diagnostics' parameter copies, reused at every update
            dim = sum(p.numel() for p in self.model.parameters())
            self._before, self._after = torch.empty(dim), torch.empty(dim)
        if state:
            self._restore(state)
        else:
            obs, _ = self.env.reset(seed=self.env_seed)
            self.buf.obs[0] = torch.as_tensor(obs)
        ckpt.remove_stale_temp_files(self.run_dir / "checkpoints")  # left by a learner killed while saving
        self.metrics.run_dir = str(self.run_dir)
        self.coupling = make_coupling(cfg, ctx, self.model)

    @property
    def env_seed(self) -> int:
        return self.cfg.seed + self.ctx.rank * self.cfg.num_envs

    def _build_env(self):
        env = build_env(self.cfg, seed=self.env_seed, num_threads=self.cfg.env_threads or self.cores)
        if self.ctx.rank in self.cfg.slow_learners and self.cfg.slowdown > 1:
            env = Straggler(env, self.cfg.slowdown)
        return env

    def _make_optimizer(self):
        cfg = self.cfg
        if cfg.algo == "a3c" and self.ctx.shared is not None:
            return HogwildOptimizer(self.model, self.ctx.shared.model, self.ctx.shared.optimizer(cfg))
        return make_optimizer(self.model, cfg.lr, cfg.rms_alpha, cfg.rms_eps)

    def _resume_path(self) -> Path:
        path = Path(self.cfg.resume)
        if self.ctx.world_size > 1 and path.is_dir():
            return path / f"learner_{self.ctx.rank}"
        return path

    def _run_dir(self, state: dict[str, Any] | None) -> Path:
        resumed_here = state and not self.cfg.run_dir  # continue where the checkpoint is (…/checkpoints/ckpt_*.pt)
        if resumed_here:
            base = Path(state["path"]).parent.parent
        else:
            base = Path(self.cfg.run_dir) if self.cfg.run_dir else ckpt.new_run_dir(self.cfg.resolved_run_name())
        if self.ctx.world_size > 1:  # the launcher (or torchrun_config) checked the run's directory
            return base if resumed_here else base / f"learner_{self.ctx.rank}"
        if self.ctx.stop is None:  # in the caller's process: no launcher claimed the directory for us
            self._claim = claim_run_dir(base, new_run=not state)
        return base

    @property
    def global_step(self) -> int:
        return self.update * self.cfg.batch_size

    # -- the loop
    def run(self) -> Metrics:
        cfg = self.cfg
        writer = MetricsWriter(self.run_dir, cfg.tensorboard, hparams=cfg.to_dict(),
                               resumed_at=self.global_step if cfg.resume else None)
        bar = _progress_bar(cfg, self.global_step) if self.ctx.world_size == 1 else None
        start_time, start_step = time.perf_counter(), self.global_step
        interrupt = DeferredInterrupt(enabled=self.ctx.stop is None and self.ctx.world_size == 1)
        try:
            with interrupt:
                self._loop(writer, bar, start_time, start_step, interrupt)
        finally:
            writer.close()
            if bar is not None:
                bar.close()
        if interrupt.pending:
            raise KeyboardInterrupt(f"stopped after update {self.update}; saved {self.metrics.checkpoint}")
        return self.metrics

    def _loop(self, writer: MetricsWriter, bar, start_time: float, start_step: int,
              interrupt: DeferredInterrupt) -> None:
        """Updates until the last one, a stop (``Run.stop``; AllReduce learners agree on when) or an interrupt;
        then save."""
        cfg = self.cfg
        while self.update < cfg.num_updates and not (interrupt.pending or self.coupling.stop_requested()):
            stats, episodes = self.train_one_update()
            for e in episodes:
                writer.episode(e)
            if self.update % cfg.log_interval == 0 or self.update == cfg.num_updates:
                sps = (self.global_step - start_step) / (time.perf_counter() - start_time)
                self._log(writer, stats, sps, bar)
            if cfg.checkpoint_interval and self.update % cfg.checkpoint_interval == 0:
                self.save()
        if self.ctx.board is not None and self.update % cfg.diag_interval:
            self._publish()  # the final parameters, for the last reading
        self.save()
        self.coupling.close()

    def train_one_update(self) -> tuple[dict[str, Any], list[Episode]]:
        """Rollout → A2C update → coupling (e.g. one gossip step). Returns its statistics and finished games."""
        cfg = self.cfg
        self._set_learning_rate()
        start = time.perf_counter()
        self.coupling.before_rollout(self.model)
        episodes = collect_rollout(self.env, self.model, self.buf, self.global_step)
        rollout_done = time.perf_counter()
        theta = flatten_into(list(self.model.parameters()), self._before) if cfg.diag_interval else None
        stats = a2c_update(self.model, self.optimizer, self.buf, cfg.gamma, cfg.gae_lambda, cfg.value_coef,
                           cfg.entropy_coef, cfg.max_grad_norm, grad_hook=self.coupling.grad_hook)
        if theta is not None:  # ‖θ after − θ before‖ of the local step: α·G in the ε-ball bound
            stats["step_norm"] = float(theta.sub_(self._flat_params()).norm())
            self._max_step_norm = max(self._max_step_norm, stats["step_norm"])
        update_done = time.perf_counter()
        self._check_finite(self.update + 1, "after its A2C update")  # before gossip: a diverged θ is never sent
        stats.update(self.coupling.after_update(self.model, self.update))
        stats.update(time_rollout_s=rollout_done - start, time_update_s=update_done - rollout_done,
                     time_coupling_s=time.perf_counter() - update_done)
        self.buf.obs[0] = self.buf.obs[-1]  # s_T starts the next rollout
        self.update += 1
        if self.ctx.heartbeats is not None:
            self.ctx.heartbeats.beat(self.ctx.rank)
        if self.ctx.board is not None and self.update % cfg.diag_interval == 0:
            self._publish()
        self.metrics.episodes += episodes
        self._unsent += episodes
        return stats, episodes

    def _publish(self) -> None:
        """θ_i and the largest local step so far onto the diagnostics board (``galakit.runtime.diagnostics``)."""
        self.ctx.board.publish(self.ctx.rank, self.update, self._flat_params(), self._max_step_norm)

    def _flat_params(self) -> torch.Tensor:
        """θ (D,) on the CPU, in a buffer reused from update to update."""
        return flatten_into(list(self.model.parameters()), self._after)

    def _set_learning_rate(self) -> None:
        lr = self.cfg.lr * (1 - self.update / self.cfg.num_updates) if self.cfg.lr_decay else self.cfg.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _log(self, writer: MetricsWriter, stats: dict[str, float], sps: float, bar) -> None:
        recent = self.metrics.episodes[-100:]
        row = {"rank": self.ctx.rank, "global_step": self.global_step, "update": self.update, "time": time.time(),
               "SPS": sps,
               "episodes": len(self.metrics.episodes),
               "episodic_return_mean": float(np.mean([e.ret for e in recent])) if recent else float("nan"),
               "episodic_length_mean": float(np.mean([e.length for e in recent])) if recent else float("nan"),
               "learning_rate": self.optimizer.param_groups[0]["lr"], **stats}
        writer.progress(row)
        self.metrics.progress.append(row)
        if bar is not None:
            bar.n = self.global_step
            bar.set_postfix(ret=f"{row['episodic_return_mean']:.1f}", sps=f"{sps:.0f}", refresh=False)
            bar.update(0)
        if self.callback is not None:
            self.callback({**row, "new_episodes": [(e.global_step, e.ret, e.length) for e in self._unsent]})
        self._unsent = []

    def _check_finite(self, update: int, when: str) -> None:
        """Raise ``DivergenceError`` when θ holds a NaN or ±inf. A NaN or inf anywhere makes Σθ NaN or inf, and a
        sum is the cheapest pass over the parameters (a tenth of ``isfinite(θ).all()``; 0.3 ms for the Atari
        model on one core); it also catches a finite θ so large that Σθ overflows, which has diverged as well."""
        with torch.no_grad():
            total = torch.stack([p.sum() for p in self.model.parameters()]).sum()
        if not bool(torch.isfinite(total)):
            raise DivergenceError(self.ctx.rank, update, when)

    # -- checkpoints
    def save(self) -> Path:
        """Write a checkpoint (``galakit.io.checkpoint``) of everything a resumed run needs to continue exactly.
        A learner whose parameters are not finite refuses: its newest checkpoint stays its last good one."""
        self._check_finite(self.update, "when saving a checkpoint")
        state = {"config": self.cfg.to_dict(), "update": self.update, "global_step": self.global_step,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "rng": ckpt.rng_state(), "obs": self.buf.obs[0].cpu(),
                 "env_state": ckpt.simulator_state(self._simulators()),
                 "episodes": [(e.global_step, e.ret, e.length) for e in self.metrics.episodes]}
        path = ckpt.save_checkpoint(state, self.run_dir / "checkpoints", self.global_step,
                                    self.cfg.keep_checkpoints)
        self.metrics.checkpoint = str(path)
        return path

    def _simulators(self):
        """The vector env whose state a checkpoint holds: below ``Straggler``, which only adds a delay."""
        return self.env.env if isinstance(self.env, Straggler) else self.env

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.update = state["update"]
        self.metrics.episodes = [Episode(*e) for e in state["episodes"]]
        self.buf.obs[0] = state["obs"].to(self.device)
        if state["env_state"] is None:  # simulators out of reach (native ALE, async): they start fresh games
            obs, _ = self.env.reset(seed=self.cfg.seed + self.global_step)
            self.buf.obs[0] = torch.as_tensor(obs)
        ckpt.set_rng_state(state["rng"])

    def close(self) -> None:
        if getattr(self, "env", None) is not None:
            self.env.close()
        if self._claim is not None:
            self._claim.release()
            self._claim = None


class DeferredInterrupt:
    """Within ``with``: Ctrl-C (SIGINT) or SIGTERM sets ``pending`` instead of raising at once, so that the
    loop finishes its update, saves, and then raises ``KeyboardInterrupt``; a second Ctrl-C raises at once.
    Only for a learner in the caller's process (learner processes leave signals to their launcher), and only in
    the main thread, where signal handlers live."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.pending, self._previous = enabled, False, {}

    def __enter__(self) -> DeferredInterrupt:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) not in (signal.SIG_IGN, None):  # learners ignore SIGINT: keep it so
                    self._previous[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum, frame) -> None:
        if self.pending and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.pending = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


_MUST_MATCH = ("env_id", "num_envs", "num_steps", "hidden_sizes", "algo")


def _check_resumable(cfg: Config, state: dict[str, Any]) -> None:
    saved = state["config"]
    for name in _MUST_MATCH:
        ours = getattr(cfg, name)
        theirs = tuple(saved[name]) if isinstance(ours, tuple) else saved[name]
        if ours != theirs:
            raise ValueError(f"resume: {name} is {ours!r} but the checkpoint {state['path']!r} was trained with "
                             f"{theirs!r}; these must match to continue a run")


def _progress_bar(cfg: Config, initial: int):
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm  # a widget in notebooks, text in terminals

    return tqdm(total=cfg.num_updates * cfg.batch_size, initial=initial, unit="step", desc=cfg.env_id,
                dynamic_ncols=True)
