"""One learner: its simulators, its actor-critic and its optimizer, looping rollout → A2C update → coupling.

``Learner`` holds the state of a run so that it can be checkpointed and resumed exactly
(``galakit.io.checkpoint.LearnerState``); ``Learner.run`` is the loop. The learners of a multi-process run are this
same loop: what couples them (a gossip step, averaged gradients, a shared model) is the ``coupling`` it calls, and
what they report goes to their observers (``galakit.io.observers``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from galakit.config import LEARNER_SEED_STRIDE, Config
from galakit.io import checkpoint as ckpt
from galakit.io.checkpoint import LearnerState
from galakit.io.metrics import Metrics
from galakit.io.observers import Observer, Observers, RunInfo, RunLog
from galakit.io.rundir import RunDirClaim, claim_run_dir
from galakit.io.runs import save_config
from galakit.rl.a2c import Episode, RolloutBuffer, a2c_update, collect_rollout
from galakit.rl.envs import Straggler, build_env
from galakit.rl.machine import DeferredInterrupt, resolve_device, seed_everything, set_threads
from galakit.rl.models import initial_model
from galakit.runtime.coupling import make_coupling
from galakit.runtime.diagnostics import Probe


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


class Learner:
    """An A2C learner. ``Learner(cfg).run()`` trains for ``cfg.total_timesteps`` and returns the ``Metrics``.

    In a run of several learners each process builds one ``Learner`` with its ``LearnerContext``: rank r steps
    simulators seeded ``seed + r·num_envs + i``, starts from the same parameters as every other learner, and is
    coupled to the others as ``cfg.algo`` says (``galakit.runtime.coupling``). Its ``observers`` get its episodes
    and progress rows (``galakit.io.observers``); it always writes its own CSV (and TensorBoard) files.

    Building one sets torch's thread count and the global random generators of this process (the learner's
    seeds): ``galakit.train`` puts the caller's back when the run ends (``galakit.rl.machine.KernelState``).
    """

    def __init__(self, cfg: Config, observers: Iterable[Observer] = (), context: LearnerContext | None = None):
        self.cfg, self.observers = cfg, Observers(observers)
        self.ctx = ctx = context or LearnerContext()
        self._claim: RunDirClaim | None = None
        self.cores = set_threads(cfg, ctx.world_size)
        self.device = resolve_device(cfg.device, ctx.rank)
        saved = self._resumed_state()
        self.run_dir = self._run_dir(saved)  # claimed (or refused) before any simulator is built
        try:
            self._build(saved)
        except BaseException:  # free the simulators and the run directory: a corrected retry must not find them
            self.close()
            raise

    def _resumed_state(self) -> LearnerState | None:
        if not self.cfg.resume:
            return None
        from galakit.preflight import check_same_run

        path = Path(self.cfg.resume)
        if self.ctx.world_size > 1 and path.is_dir():
            path = path / f"learner_{self.ctx.rank}"
        state = ckpt.load_checkpoint(path)
        check_same_run(self.cfg, state)
        return LearnerState.from_dict(state, rank=self.ctx.rank)

    def _build(self, saved: LearnerState | None) -> None:
        """The simulators, θ_0, the coupling and its optimizer, the rollout buffer; then the checkpoint's state."""
        cfg, ctx = self.cfg, self.ctx
        self.env = self._build_env()
        obs_space, act_space = self.env.single_observation_space, self.env.single_action_space
        self.model = initial_model(cfg, ctx.rank, obs_space.shape, int(act_space.n)).to(self.device)
        seed_everything(cfg.seed + LEARNER_SEED_STRIDE * ctx.rank)  # each learner samples its own actions
        self.coupling = make_coupling(cfg, ctx, self.model)
        self.optimizer = self.coupling.make_optimizer(self.model, cfg)
        self.probe = Probe(ctx.rank, cfg.diag_interval, ctx.board, ctx.heartbeats)
        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        self.buf = RolloutBuffer(cfg.num_steps, cfg.num_envs, obs_space.shape, obs_dtype, self.device)
        self.update = 0
        self.metrics = Metrics(run_dir=str(self.run_dir), config=cfg)
        self.metrics.config = cfg
        if saved:
            self._restore(saved)
        else:
            obs, _ = self.env.reset(seed=self.env_seed)
            self.buf.obs[0] = torch.as_tensor(obs)
        ckpt.remove_stale_temp_files(self.run_dir / "checkpoints")  # left by a learner killed while saving

    @property
    def env_seed(self) -> int:
        return self.cfg.seed + self.ctx.rank * self.cfg.num_envs

    def _build_env(self):
        env = build_env(self.cfg, seed=self.env_seed, num_threads=self.cfg.env_threads or self.cores)
        if self.ctx.rank in self.cfg.slow_learners and self.cfg.slowdown > 1:
            env = Straggler(env, self.cfg.slowdown)
        return env

    def _run_dir(self, saved: LearnerState | None) -> Path:
        resumed_here = saved and not self.cfg.run_dir  # continue where the checkpoint is (…/checkpoints/ckpt_*.pt)
        if resumed_here:
            base = Path(saved.path).parent.parent
        else:
            base = Path(self.cfg.run_dir) if self.cfg.run_dir else ckpt.new_run_dir(self.cfg.resolved_run_name())
        if self.ctx.world_size > 1:  # the launcher (or torchrun_config) checked the run's directory
            return base if resumed_here else base / f"learner_{self.ctx.rank}"
        if self.ctx.stop is None:  # in the caller's process: no launcher claimed the directory for us
            self._claim = claim_run_dir(base, new_run=not saved)
        return base

    @property
    def global_step(self) -> int:
        return self.update * self.cfg.batch_size

    # -- the loop
    def run(self) -> Metrics:
        """Train to the last update (or a stop, or Ctrl-C in the caller's process), save, and return ``Metrics``."""
        cfg = self.cfg
        log = RunLog(self.run_dir, cfg.tensorboard, hparams=cfg.to_dict(),
                     resumed_at=self.global_step if cfg.resume else None)
        save_config(cfg, self.run_dir, self.ctx.rank, self.ctx.world_size)  # <run_dir>/config.json
        observers = Observers([log, self.observers])
        observers.on_start(RunInfo(cfg, str(self.run_dir), self.ctx.world_size, self.global_step))
        interrupt = DeferredInterrupt(enabled=self.ctx.stop is None and self.ctx.world_size == 1)
        try:
            with interrupt:
                self._loop(observers, interrupt)
        finally:
            observers.on_end(self.metrics)
        if interrupt.pending:
            raise KeyboardInterrupt(f"stopped after update {self.update}; saved {self.metrics.checkpoint}")
        return self.metrics

    def _loop(self, observers: Observer, interrupt: DeferredInterrupt) -> None:
        """Updates until the last one, a stop (``Run.stop``; AllReduce learners agree on when) or an interrupt;
        then save."""
        cfg = self.cfg
        start_time, start_step = time.perf_counter(), self.global_step
        while self.update < cfg.num_updates and not (interrupt.pending or self.coupling.stop_requested()):
            stats, episodes = self.train_one_update()
            for episode in episodes:
                observers.on_episode(episode)
            if self.update % cfg.log_interval == 0 or self.update == cfg.num_updates:
                sps = (self.global_step - start_step) / (time.perf_counter() - start_time)
                observers.on_update(self._row(stats, sps))
            if cfg.checkpoint_interval and self.update % cfg.checkpoint_interval == 0:
                self.save()
        self.probe.after_update(self.model, self.update, final=True)  # the final θ, for the last reading
        self.save()
        self.coupling.close()

    def train_one_update(self) -> tuple[dict[str, Any], list[Episode]]:
        """One update of this learner: rollout → A2C update → coupling (e.g. one gossip step).

        Returns the update's statistics (losses, the coupling's counters, the time of each phase) and the games
        that ended during its rollout.
        """
        self._set_learning_rate()
        t0 = time.perf_counter()
        self.coupling.before_rollout(self.model)  # A3C: copy the shared θ
        episodes = collect_rollout(self.env, self.model, self.buf, self.global_step)
        t1 = time.perf_counter()
        self.probe.before_step(self.model)
        cfg = self.cfg
        stats = a2c_update(self.model, self.optimizer, self.buf, cfg.gamma, cfg.gae_lambda, cfg.value_coef,
                           cfg.entropy_coef, cfg.max_grad_norm,
                           grad_hook=self.coupling.grad_hook)  # AllReduce: the average gradient
        stats.update(self.probe.after_step(self.model))  # ‖θ after − θ before‖: α G in the ε bound
        t2 = time.perf_counter()
        self._check_finite(self.update + 1, "after its A2C update")  # before gossip: a diverged θ is never sent
        stats.update(self.coupling.after_update(self.model, self.update))  # GALA: one gossip step
        stats.update(time_rollout_s=t1 - t0, time_update_s=t2 - t1, time_coupling_s=time.perf_counter() - t2)
        self.buf.obs[0] = self.buf.obs[-1]  # s_T starts the next rollout
        self.update += 1
        self.probe.after_update(self.model, self.update)
        episodes = [Episode(e.global_step, e.ret, e.length, self.ctx.rank) for e in episodes]
        self.metrics.episodes += episodes
        return stats, episodes

    def _set_learning_rate(self) -> None:
        lr = self.cfg.lr * (1 - self.update / self.cfg.num_updates) if self.cfg.lr_decay else self.cfg.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _row(self, stats: dict[str, float], sps: float) -> dict[str, Any]:
        """A progress row: where the learner is, its recent raw returns, and the update's statistics."""
        recent = self.metrics.episodes[-100:]
        row = {"rank": self.ctx.rank, "global_step": self.global_step, "update": self.update, "time": time.time(),
               "SPS": sps, "episodes": len(self.metrics.episodes),
               "episodic_return_mean": float(np.mean([e.ret for e in recent])) if recent else float("nan"),
               "episodic_length_mean": float(np.mean([e.length for e in recent])) if recent else float("nan"),
               "learning_rate": self.optimizer.param_groups[0]["lr"], **stats}
        self.metrics.progress.append(row)
        return row

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
        """Write a checkpoint of everything a resumed run needs to continue exactly (``LearnerState``). A learner
        whose parameters are not finite refuses: its newest checkpoint stays its last good one."""
        self._check_finite(self.update, "when saving a checkpoint")
        state = LearnerState(config=self.cfg.to_dict(), update=self.update, global_step=self.global_step,
                             model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                             rng=ckpt.rng_state(), obs=self.buf.obs[0].cpu(),
                             env_state=ckpt.simulator_state(self._simulators()), episodes=self.metrics.episodes)
        path = state.save(self.run_dir / "checkpoints", self.cfg.keep_checkpoints)
        self.metrics.checkpoint = str(path)
        return path

    def _simulators(self):
        """The vector env whose state a checkpoint holds: below ``Straggler``, which only adds a delay."""
        return self.env.env if isinstance(self.env, Straggler) else self.env

    def _restore(self, saved: LearnerState) -> None:
        if saved.env_state is not None:  # the simulators continue their games exactly
            ckpt.restore_simulator_state(self._simulators(), saved.env_state)
        self.model.load_state_dict(saved.model)
        self.optimizer.load_state_dict(saved.optimizer)
        self.update = saved.update
        self.metrics.episodes = saved.episodes
        self.buf.obs[0] = saved.obs.to(self.device)
        if saved.env_state is None:  # simulators out of reach (native ALE, async): they start fresh games
            obs, _ = self.env.reset(seed=self.cfg.seed + self.global_step)
            self.buf.obs[0] = torch.as_tensor(obs)
        ckpt.set_rng_state(saved.rng)

    def close(self) -> None:
        if getattr(self, "env", None) is not None:
            self.env.close()
        if self._claim is not None:
            self._claim.release()
            self._claim = None
