"""How the learners of a run are coupled: not at all (A2C), by gossip (GALA), by averaged gradients
(AllReduce A2C) or through one shared model (A3C).

Each coupling hooks into the same learner loop at three points::

    coupling.before_rollout(model)          # A3C: pull the shared parameters
    a2c_update(..., grad_hook=coupling.grad_hook)   # AllReduce: average the gradients before the step
    coupling.after_update(model, k)         # GALA: one gossip step with the peers of step k

GALA's gossip step (the official code's rule, on ``galakit.gossip.topology`` schedules, by the rule of
``galakit.gossip.rule`` that the simulator applies too): learner i sends θ_i to its out-peers of step k; then, if
every in-peer of step k has a fresh message, it mixes what has arrived,

    θ_i ← (w_ii θ_i + Σ_j w_ij θ_j) / (w_ii + Σ_j w_ij)     over the senders j with a fresh message,

and otherwise skips mixing and carries on (asynchronous gossip). After ``sync_freq`` consecutive skips it blocks
until its in-peers' messages arrive (``sync_freq=0``: always, i.e. synchronous gossip; ``None``: never). The
weights are the row of W_k (1/(p+1) each on a regular graph, as in the paper's code); a message from a learner
that is not an in-peer of step k (it is at another step of a time-varying schedule) gets their mean weight.

``staleness`` (progress rows; ``gossip/staleness`` in TensorBoard) is the age of the messages mixed, counted in
their senders' updates: how many updates the sender had made since the message it mixed, the largest over the
messages of the newest step that mixed (``Mailbox.age``; blank until the first). It is never negative, and it is not a
difference of the two learners' update counts, which says how far apart they are, not how old a message is.
Over shared memory it is exact; over gloo the receiver knows of the sender's updates only by its messages, so it
is a lower bound.

Non-finite parameters never spread: a learner checks θ_i before it gossips (``Learner.train_one_update`` stops
with ``DivergenceError``), and a delivery that holds a NaN or inf all the same (a peer running other code) is
dropped, not mixed: that step counts as a skip, and ``gossip_rejected_total`` counts it. Dropping rather than
raising keeps the healthy learner running, so the run's error names the learner that diverged.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from galakit.gossip.rule import (
    DEFAULT_POLICY,
    GossipAction,
    WritePolicy,
    gossip_action,
    mixing_scale,
    resolve_policy,
    sender_weights,
)
from galakit.gossip.topology import Schedule, build_topology
from galakit.rl.a2c import make_optimizer
from galakit.runtime.transport import GossipChannel, SharedMemoryChannel, SharedSlots
from galakit.validation import fail


class Independent:
    """Plain A2C: learners share nothing (one learner, or k independent ones)."""

    grad_hook = None
    rank, heartbeats = 0, None  # heartbeats: galakit.runtime.heartbeat.Heartbeats, set by make_coupling

    def __init__(self, stop: threading.Event | None = None):
        self.stop = stop  # the launcher's "finish your update and save" (``Run.stop``)

    def _waiting(self, waiting: bool) -> None:
        """Tell the supervisor that this learner starts (True) or stops (False) waiting for the others."""
        if self.heartbeats is not None:
            (self.heartbeats.waiting if waiting else self.heartbeats.beat)(self.rank)

    def stop_requested(self) -> bool:
        """Leave the training loop after the update just done?"""
        return self.stop is not None and self.stop.is_set()

    def make_optimizer(self, model: nn.Module, cfg) -> torch.optim.Optimizer:
        """The learner's optimizer: RMSProp on its own parameters (A3C's shares its statistics)."""
        return make_optimizer(model, cfg.lr, cfg.rms_alpha, cfg.rms_eps)

    def before_rollout(self, model: nn.Module) -> None:
        pass

    def after_update(self, model: nn.Module, update: int) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


class AllReduce(Independent):
    """Synchronous data-parallel A2C: after backward, every learner's gradient is replaced by the average over
    all learners (one flattened all-reduce). Same initial parameters + same gradients + same optimizer ⇒ the
    learners hold identical parameters after every update; the run moves at the pace of the slowest learner.

    Stopping is decided together: each learner adds one number to its gradient, 1 if it was asked to stop, and
    after the all-reduce every learner sees the same sum. All leave after the same update, so none waits in an
    all-reduce that another has left (and their final parameters are equal)."""

    def __init__(self, world_size: int, stop: threading.Event | None = None):
        super().__init__(stop)
        self.world_size, self.agreed_stop = world_size, False

    def grad_hook(self, model: nn.Module) -> None:
        grads = [p.grad for p in model.parameters()]
        asked = torch.ones(1) if super().stop_requested() else torch.zeros(1)
        flat = torch.cat([g.flatten().cpu() for g in grads] + [asked])  # (D + 1,)
        self._waiting(True)
        dist.all_reduce(flat)
        self._waiting(False)
        self.agreed_stop = bool(flat[-1] > 0)
        flat = flat[:-1].div_(self.world_size)
        vector_to_parameters(flat.to(grads[0].device), grads)

    def stop_requested(self) -> bool:
        return self.agreed_stop


class SharedModel(Independent):
    """A3C (Hogwild): one model in shared memory. Each learner copies the shared parameters before its rollout,
    computes its gradient on that copy and applies it to the shared model with a shared RMSProp, without locks
    (Mnih et al. 2016). Runs on one machine only."""

    def __init__(self, shared: SharedState, stop: threading.Event | None = None):
        super().__init__(stop)
        self.shared, self.shared_model = shared, shared.model

    def make_optimizer(self, model: nn.Module, cfg) -> HogwildOptimizer:
        """The gradient of the local copy goes to the shared model's RMSProp, whose statistics are shared too."""
        return HogwildOptimizer(model, self.shared_model, self.shared.optimizer(cfg))

    def before_rollout(self, model: nn.Module) -> None:
        with torch.no_grad():
            for local, shared in zip(model.parameters(), self.shared_model.parameters(), strict=True):
                local.copy_(shared)


class HogwildOptimizer:
    """Applies gradients computed on a learner's local model to the shared model's optimizer."""

    def __init__(self, local_model: nn.Module, shared_model: nn.Module, shared_optimizer: torch.optim.Optimizer):
        self.local, self.shared, self.optimizer = local_model, shared_model, shared_optimizer
        self.param_groups = shared_optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.local.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for local, shared in zip(self.local.parameters(), self.shared.parameters(), strict=True):
            shared.grad = local.grad.to(shared.device)
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


class SharedState:
    """A3C's shared model and its RMSProp statistics (A3C's "shared RMSProp"), all in shared memory.

    Built once by the launcher and handed to every learner process; each learner wraps it in its own optimizer
    object, whose statistics are these shared tensors.
    """

    def __init__(self, model: nn.Module):
        self.model = model.share_memory()
        self.square_avg = [torch.zeros_like(p).share_memory_() for p in model.parameters()]
        self.steps = [torch.zeros(()).share_memory_() for _ in model.parameters()]

    def optimizer(self, cfg) -> torch.optim.RMSprop:
        optimizer = torch.optim.RMSprop(self.model.parameters(), lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.rms_eps)
        for p, square_avg, step in zip(self.model.parameters(), self.square_avg, self.steps, strict=True):
            optimizer.state[p] = {"step": step, "square_avg": square_avg}
        return optimizer


class Gossip(Independent):
    """GALA: after each update, one gossip step with the peers that ``schedule`` gives for that step, by the rule
    of `galakit.gossip.rule` (the simulator's): ``write_message`` then ``aggregate_message``, as the official code
    calls them after ``optimizer.step()``.

    ``policy`` (`galakit.gossip.rule.WritePolicy`, default "latest") is what a write does to a message the
    receiver has not read: "latest" replaces it, "skip" keeps it (the official code). It applies to asynchronous
    gossip; ``sync_freq=0`` keeps every message ("exact") and push-sum adds them up ("sum"), whatever ``policy``.

    ``push_sum``: also gossip a weight w_i (Kempe et al. 2003): the sender keeps 1/(p+1) of (w_i θ_i, w_i) and
    sends 1/(p+1) to each out-peer; the learner then uses θ_i = numerator / w_i. This recovers the true average
    on directed graphs whose W is not doubly stochastic. Push-sum must not lose messages: over gloo a learner
    waits for its previous message to leave before posting the next; over shared memory a message the receiver
    has not taken yet is added to.
    """

    def __init__(self, schedule: Schedule, rank: int, model: nn.Module, sync_freq: int | None = None,
                 push_sum: bool = False, stop: threading.Event | None = None, group=None,
                 slots: SharedSlots | None = None, *, policy: WritePolicy | str = DEFAULT_POLICY):
        super().__init__(stop)
        self.schedule, self.rank, self.sync_freq, self.push_sum = schedule, rank, sync_freq, push_sum
        dim = sum(p.numel() for p in model.parameters())
        self.policy = resolve_policy(policy, sync_freq, push_sum)
        self.exact = self.policy == WritePolicy.EXACT  # synchronous gossip: mix exactly the step-k messages
        if slots is not None:  # learners on one machine: shared memory
            self.channel = SharedMemoryChannel(rank, schedule.n, dim, slots, policy=self.policy)
        else:
            self.channel = GossipChannel(rank, schedule.n, dim, policy=self.policy, group=group)
        self.theta, self.mixed = torch.empty(dim), torch.empty(dim)  # CPU buffers, reused at every step
        self.ps_weight = 1.0
        self._kept = 1.0  # push-sum: the share of w_i this learner kept at its last write
        self.skips = 0
        self.last_staleness: int | None = None  # of the newest step that mixed
        self.totals = {"mixed": 0, "skipped": 0, "waits": 0, "rejected": 0}

    def after_update(self, model: nn.Module, update: int) -> dict[str, Any]:
        """One gossip step after update ``update``: send θ_i, then mix what has arrived (or skip, or wait)."""
        self.write_message(model, update)
        return self.aggregate_message(model, update)

    def write_message(self, model: nn.Module, update: int) -> None:
        """Send θ_i (plain) or a 1/(p+1) share of (w_i θ_i, w_i) (push-sum) to the out-peers of step ``update``.
        Keeps the flattened θ_i for ``aggregate_message``, which must come next with the same model."""
        out_peers = self.schedule.peers(self.rank, update).out_peers
        theta = flatten_into(list(model.parameters()), self.theta)  # staged through the CPU (shared GPUs, gloo)
        if not self.push_sum:
            self.channel.post(theta, update, out_peers, keep_every_message=self.exact)
            return
        self._kept = self.ps_weight / (len(out_peers) + 1)
        self.channel.post(theta * self._kept, update, out_peers, weight=self._kept, keep_every_message=True)

    def aggregate_message(self, model: nn.Module, update: int) -> dict[str, Any]:
        """`gossip_action` on the mailbox: mix, skip, or block until the in-peers' messages come. Returns the
        step's gossip statistics (a progress row's ``gossip_*``, ``staleness`` and ``messages_*`` columns)."""
        peers = self.schedule.peers(self.rank, update)
        mailbox, step = self.channel.mailbox, update if self.exact else None
        self.channel.poll()
        action = gossip_action(mailbox.has_all(peers.in_peers, step), self.skips, self.sync_freq)
        waited = self._wait(peers, update) if action == GossipAction.BLOCK else 0.0
        delivery = None
        if action != GossipAction.SKIP:
            weights = None if self.push_sum else sender_weights(peers, self.schedule.n)
            delivery = mailbox.take(weights, step, out=self.mixed)
        if delivery is not None and not _finite(delivery):  # never mix a diverged peer's θ into ours
            self.totals["rejected"] += 1
            delivery = None
        if delivery is None:
            self.skips += 1
            self.totals["skipped"] += 1
            self.ps_weight = self._kept  # push-sum: θ = (share·θ)/share is unchanged, w shrank to our share
            return self._stats(mixed=False, waited=waited)
        copy_into_parameters(self._mix(delivery, peers), list(model.parameters()))
        self.skips = 0
        self.totals["mixed"] += 1
        self.last_staleness = mailbox.age(delivery)
        return self._stats(mixed=True, waited=waited)

    def _wait(self, peers, update: int) -> float:
        """Block until the messages of step ``update`` from ``peers.in_peers`` can be taken; the seconds waited."""
        self._waiting(True)
        waited = self.channel.wait_for(peers.in_peers, update, self.stop)
        self._waiting(False)
        self.totals["waits"] += 1
        return waited

    def _mix(self, delivery, peers) -> torch.Tensor:
        """The mixed θ_i, in place in ``delivery.total`` (which holds Σ_j w_ij θ_j, or Σ_j of the push-sum shares):

        plain: θ_i ← c_i (w_ii θ_i + Σ_j w_ij θ_j), c_i = 1 / (w_ii + Σ_j w_ij) (`mixing_scale`, over the senders
        j mixed); push-sum: θ_i ← (w_kept θ_i + Σ_j (w_j θ_j)) / w_i with the new weight w_i = w_kept + Σ_j w_j."""
        if self.push_sum:
            self.ps_weight = self._kept + delivery.weight
            return delivery.total.add_(self.theta, alpha=self._kept).div_(self.ps_weight)
        scale = mixing_scale(peers.self_weight, delivery.weight)
        return delivery.total.add_(self.theta, alpha=peers.self_weight).mul_(scale)

    def _stats(self, mixed: bool, waited: float) -> dict[str, Any]:
        return {"gossip_mixed": int(mixed), "gossip_wait_s": waited, "staleness": self.last_staleness,
                "consecutive_skips": self.skips, "messages_sent": self.channel.sent,
                "messages_dropped": self.channel.dropped, "messages_received": self.channel.mailbox.received,
                **{f"gossip_{k}_total": v for k, v in self.totals.items()}}

    def close(self) -> None:
        self.channel.close()


def _finite(delivery) -> bool:
    """Whether a delivery's messages hold only finite numbers: a NaN or inf in any message survives the sum
    Σ_j w_ij θ_j, and then the sum of its entries (the cheapest pass over it)."""
    return math.isfinite(delivery.weight) and math.isfinite(float(delivery.total.sum()))


def flatten_into(params: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """Copy the parameters, flattened and concatenated, into the CPU vector ``out`` (D,) and return it."""
    with torch.no_grad():
        if params[0].device.type == "cpu":
            return torch.cat([p.reshape(-1) for p in params], out=out)
        return out.copy_(parameters_to_vector(params))


def copy_into_parameters(vector: torch.Tensor, params: list[torch.Tensor]) -> None:
    """The inverse of ``flatten_into``: copy the (D,) vector into the parameters, in place. (Unlike
    ``vector_to_parameters``, the parameters do not become views of ``vector``, a buffer reused later.)"""
    with torch.no_grad():
        for p, chunk in zip(params, vector.split([p.numel() for p in params]), strict=True):
            p.copy_(chunk.view_as(p))


def make_coupling(cfg, ctx, model: nn.Module) -> Independent:
    """The coupling that ``cfg.algo`` asks for, for the learner described by ``ctx`` (a ``LearnerContext``)."""
    coupling = _coupling(cfg, ctx, model)
    coupling.rank, coupling.heartbeats = ctx.rank, ctx.heartbeats
    return coupling


def _coupling(cfg, ctx, model: nn.Module) -> Independent:
    if ctx.world_size == 1 or cfg.algo == "a2c":
        return Independent(ctx.stop)
    if cfg.algo == "allreduce":
        return AllReduce(ctx.world_size, ctx.stop)
    if cfg.algo == "a3c":
        if ctx.shared is None:
            raise ValueError("algo: 'a3c' shares one model in memory, so its learners must be started by galakit "
                             "on one machine (not by torchrun); accepted there: 'gala', 'allreduce', 'a2c'")
        return SharedModel(ctx.shared, ctx.stop)
    if cfg.gossip_transport == "shared_memory" and ctx.slots is None:
        raise ValueError("gossip_transport: 'shared_memory' needs learners that galakit starts on one machine "
                         "(not torchrun); accepted there: 'gloo', 'auto'")
    return Gossip(gossip_schedule(cfg, ctx.world_size), ctx.rank, model, cfg.sync_freq, cfg.push_sum, ctx.stop,
                  ctx.gossip_group, ctx.slots, policy=cfg.gossip_policy)


def shared_slots(schedule: Schedule, dim: int, mp_context) -> SharedSlots | None:
    """Shared-memory gossip slots for every edge j → i (j ≠ i) that ``schedule`` uses at any step, or None when
    /dev/shm (where torch keeps shared tensors on Linux) has no room for twice their size."""
    edges = {(j, i) for k in range(schedule.period) for j, i in schedule.graph(k).edges() if j != i}
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    if stat.f_bavail * stat.f_frsize < 2 * 4 * len(edges) * (dim + 3):
        return None
    return SharedSlots(sorted(edges), schedule.n, dim, mp_context)


def gossip_schedule(cfg, n: int) -> Schedule:
    """The topology schedule of a GALA run of n learners: the user's own for a custom graph, else the named one
    built for n (``cfg.peers`` applies to rings)."""
    if isinstance(cfg.topology, Schedule):
        if cfg.topology.n != n:
            fail("num_learners", n, f"{cfg.topology.n}, the nodes of the topology's graph")
        return cfg.topology
    peers = {"peers": cfg.peers} if cfg.topology in ("ring", "undirected_ring") else {}
    return build_topology(cfg.topology, n, seed=cfg.seed, **peers)
