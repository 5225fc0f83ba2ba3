"""Gossip messages over ``torch.distributed``: a sender thread, a receiver thread and a mailbox per learner.

gloo's ``isend``/``irecv`` cannot be polled (``is_completed()`` stays False until ``wait()``), so a learner cannot
ask "has my peer's message arrived?" without blocking. Instead each learner runs two daemon threads:

* the **receiver** loops on a blocking ``dist.recv`` from *any* source and drops each message into the
  ``Mailbox``;
* the **sender** takes the newest posted message from a one-slot outbox and sends it to its destinations.

The learner's own thread never blocks on the network: it posts its parameters and looks into the mailbox.
gloo releases the GIL during transfers, so both threads overlap with the learner's rollout and update.

A message is one float32 vector: ``[step, push-sum weight, kind, θ_1 … θ_D]``. When a learner finishes it sends
a STOP message to every other learner; a receiver ends after it has seen a STOP from each of them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

HEADER = 3
PARAMS, STOP = 0.0, 1.0


@dataclass
class Delivery:
    """What the learner takes out of the mailbox: the sum of the fresh messages and who sent them."""

    total: torch.Tensor          # Σ_j message_j, shape (D,)
    weight: float                # Σ_j push-sum weight_j
    senders: list[int]
    steps: list[int]             # the sender's update index when it sent each message


class Mailbox:
    """Messages received by one learner, by sender and by the sender's update index (step), kept as
    ``policy`` says:

    * ``"latest"`` (asynchronous gossip): each sender's newest message replaces older ones: a learner averages
      with the freshest parameters it has;
    * ``"sum"`` (push-sum): messages from a sender are added up, since push-sum mass must never be lost;
    * ``"exact"`` (synchronous gossip): every message is kept until the receiver takes the messages of exactly
      its own step, so that each step applies one W_k and the network average is preserved.
    """

    POLICIES = ("latest", "sum", "exact")

    def __init__(self, world_size: int, policy: str = "latest"):
        if policy not in self.POLICIES:
            raise ValueError(f"policy: got {policy!r}; accepted: {self.POLICIES}")
        self.policy = policy
        self.inbox: list[dict[int, tuple[torch.Tensor, float]]] = [{} for _ in range(world_size)]
        self.last_step = [-1] * world_size   # newest step received from each sender (taken or not)
        self.stopped = [False] * world_size
        self.received = 0
        self.changed = threading.Condition()

    def deliver(self, src: int, message: torch.Tensor) -> None:
        """Called by the receiver thread with ``[step, weight, kind, θ…]`` (the buffer is reused: copy it)."""
        step, weight, kind = (float(x) for x in message[:HEADER])
        step = int(step)
        with self.changed:
            if kind == STOP:
                self.stopped[src] = True
            else:
                box, payload = self.inbox[src], message[HEADER:]
                if self.policy == "sum" and box:
                    (first, (total, mass)), = box.items()
                    box[first] = (total.add_(payload), mass + weight)
                else:
                    if self.policy == "latest":
                        box.clear()
                    box[step] = (payload.clone(), weight)
                self.last_step[src] = max(self.last_step[src], step)
                self.received += 1
            self.changed.notify_all()

    def take(self, weights: dict[int, float] | None = None, step: int | None = None) -> Delivery | None:
        """Consume the messages there (only those of ``step`` if given), each scaled by ``weights[sender]``
        (default 1). Returns their sum, or None when there is none."""
        with self.changed:
            chosen = [(j, s) for j, box in enumerate(self.inbox) for s in box if step is None or s == step]
            if not chosen:
                return None
            total = torch.zeros_like(self.inbox[chosen[0][0]][chosen[0][1]][0])
            mass = 0.0
            for j, s in chosen:
                vector, weight = self.inbox[j].pop(s)
                scale = 1.0 if weights is None else weights[j]
                total.add_(vector, alpha=scale)
                mass += scale * weight
            return Delivery(total, mass, [j for j, _ in chosen], [s for _, s in chosen])

    def has_all(self, senders: tuple[int, ...], step: int | None = None) -> bool:
        """Whether every sender has a message here (of exactly ``step``, if given) or has stopped."""
        with self.changed:
            return all(self.stopped[j] or (step in self.inbox[j] if step is not None else bool(self.inbox[j]))
                       for j in senders)

    def wait_for(self, senders: tuple[int, ...], step: int, should_stop: threading.Event | None = None) -> float:
        """Block until each sender's message for ``step`` can be taken (or the sender has stopped). Returns the
        seconds spent waiting.

        ``"exact"``: the sender's message of exactly that step is here. Otherwise: a message is here, or the
        sender has already sent one from ``step`` or later (which was taken earlier). The step condition keeps
        blocking gossip deadlock-free on time-varying graphs: a learner sends before it waits, so the step-k
        message that learner r waits for exists as soon as its in-peer at step k has finished step k − 1
        (induction on k), even if that peer is ahead and its later messages go to other learners.
        """
        if self.policy == "exact":
            ready = lambda j: step in self.inbox[j]  # noqa: E731
        else:
            ready = lambda j: bool(self.inbox[j]) or self.last_step[j] >= step  # noqa: E731
        start = time.perf_counter()
        with self.changed:
            while not all(ready(j) or self.stopped[j] for j in senders):
                if should_stop is not None and should_stop.is_set():
                    break
                self.changed.wait(timeout=0.1)
        return time.perf_counter() - start


class GossipChannel:
    """Send and receive parameter vectors of dimension D between the learners of one process group.

    ``group`` must hold every rank of the run, in order (``dist.new_group()``), so that group ranks are ranks.
    """

    def __init__(self, rank: int, world_size: int, dim: int, policy: str = "latest", group=None):
        self.rank, self.world_size, self.dim = rank, world_size, dim
        self.group = group
        self.mailbox = Mailbox(world_size, policy)
        self.sent = self.dropped = 0
        self._outbox = torch.zeros(HEADER + dim)
        self._in_flight = torch.zeros(HEADER + dim)
        self._destinations: tuple[int, ...] | None = None
        self._sending = False
        self._closing = False
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._sender = threading.Thread(target=self._send_loop, name=f"gossip-send-{rank}", daemon=True)
        self._receiver = threading.Thread(target=self._receive_loop, name=f"gossip-recv-{rank}", daemon=True)
        self._sender.start()
        self._receiver.start()

    # -- learner side
    def post(self, vector: torch.Tensor, step: int, destinations: tuple[int, ...], weight: float = 1.0,
             keep_every_message: bool = False) -> None:
        """Queue ``vector`` (D,) for ``destinations``. A message still waiting in the outbox is replaced by the
        newer one (counted in ``dropped``) unless ``keep_every_message``, which waits for it to leave first."""
        self._raise_if_failed()
        with self._cond:
            if keep_every_message:
                while self._destinations is not None and self._error is None:
                    self._cond.wait(timeout=0.1)
            elif self._destinations is not None:
                self.dropped += 1
            self._outbox[0], self._outbox[1], self._outbox[2] = float(step), weight, PARAMS
            self._outbox[HEADER:].copy_(vector)
            self._destinations = tuple(destinations)
            self._cond.notify_all()

    def close(self, timeout: float = 60.0) -> None:
        """Send STOP to every other learner, then wait for the other learners' STOPs (they may still be
        training and sending to us) and for both threads to end."""
        with self._cond:
            while (self._destinations is not None or self._sending) and self._error is None:
                self._cond.wait(timeout=0.1)
            self._outbox[:HEADER] = torch.tensor([-1.0, 0.0, STOP])
            self._destinations = tuple(r for r in range(self.world_size) if r != self.rank)
            self._closing = True
            self._cond.notify_all()
        self._sender.join(timeout)
        self._receiver.join(timeout)
        self._raise_if_failed()

    # -- threads
    def _send_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._destinations is None:
                        self._cond.wait()
                    self._outbox, self._in_flight = self._in_flight, self._outbox
                    destinations, self._destinations = self._destinations, None
                    closing, self._sending = self._closing, True
                    self._cond.notify_all()
                for dst in destinations:
                    dist.send(self._in_flight, dst, group=self.group)
                with self._cond:
                    self._sending = False
                    self.sent += 0 if closing else 1
                    self._cond.notify_all()
                if closing:
                    return
        except BaseException as err:  # surfaced to the learner on its next post/close
            self._fail(err)

    def _receive_loop(self) -> None:
        buffer = torch.zeros(HEADER + self.dim)
        open_senders = self.world_size - 1
        try:
            while open_senders > 0:
                src = dist.recv(buffer, group=self.group)  # from any source; returns the sender's rank
                self.mailbox.deliver(src, buffer)
                open_senders -= int(buffer[2] == STOP)
        except BaseException as err:
            self._fail(err)

    def _fail(self, err: BaseException) -> None:
        with self._cond:
            self._error = err
            self._cond.notify_all()
        with self.mailbox.changed:
            self.mailbox.changed.notify_all()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"gossip transport of learner {self.rank} failed: {self._error!r}") from self._error
