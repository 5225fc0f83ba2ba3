"""How gossip messages travel between learners, into a mailbox per learner that the GALA coupling mixes from.

Two transports with one interface (``post``, ``poll``, ``wait_for``, ``mailbox``, ``close``):

* ``GossipChannel``, over ``torch.distributed`` (gloo): any machines, torchrun included;
* ``SharedMemoryChannel``, over ``SharedSlots``: learners that galakit starts on one machine. No threads and no
  sockets: a message is one copy into a shared slot and one copy out (``bench/README.md`` measures both).

The gloo transport: a sender thread, a receiver thread and a mailbox per learner.

gloo's ``isend``/``irecv`` cannot be polled (``is_completed()`` stays False until ``wait()``), so a learner cannot
ask "has my peer's message arrived?" without blocking. Instead each learner runs two daemon threads:

* the **receiver** loops on a blocking ``dist.recv`` from *any* source and drops each message into the
  ``Mailbox``;
* the **sender** takes the newest posted message from a one-slot outbox and sends it to its destinations.

The learner's own thread never blocks on the network: it posts its parameters and looks into the mailbox.
gloo releases the GIL during transfers, so both threads overlap with the learner's rollout and update.

What happens to a message its receiver has not read when a newer one comes is the write policy
(`galakit.gossip.rule.WritePolicy`, the same rule the simulator applies): under "latest" the newer replaces it,
under "skip" the unread one stays and the newer is dropped. Neither transport tells a sender when its message is
read, so the receiver's ``Mailbox`` enforces the rule; over shared memory the sender also leaves a slot alone
that still holds a message (``SharedMemoryChannel``).

A message is one float32 vector: ``[step, push-sum weight, kind, oldest step, θ_1 … θ_D]``: the sender's update
index, its push-sum weight, PARAMS or STOP, and the oldest update index summed into the message (push-sum over
shared memory adds a new message to one the receiver has not taken; otherwise it equals the step). When a learner
finishes it sends
a STOP message to every other learner (over shared memory: raises its "stopped" flag); a receiver ends after it
has seen a STOP from each of them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from galakit.gossip.rule import DEFAULT_POLICY, WritePolicy
from galakit.validation import fail

HEADER = 4
PARAMS, STOP = 0.0, 1.0


def header(step: int, weight: float = 0.0, kind: float = PARAMS, oldest: int | None = None) -> torch.Tensor:
    """A message's first ``HEADER`` values: ``[step, weight, kind, oldest step]`` (oldest defaults to step)."""
    return torch.tensor([float(step), weight, kind, float(step if oldest is None else oldest)])


@dataclass
class Delivery:
    """What the learner takes out of the mailbox: the sum of the fresh messages and who sent them."""

    total: torch.Tensor          # Σ_j message_j, shape (D,)
    weight: float                # Σ_j push-sum weight_j
    senders: list[int]
    steps: list[int]             # the sender's update index when it sent each message (the oldest, for sums)


class Mailbox:
    """Messages received by one learner, by sender and by the sender's update index (step), kept as
    ``policy`` (a `galakit.gossip.rule.WritePolicy`) says:

    * ``"latest"`` (asynchronous gossip, the default): each sender's newest message replaces an unread one: a
      learner averages with the freshest parameters it has;
    * ``"skip"`` (asynchronous gossip, the official code's rule): a sender's unread message stays, and newer ones
      are discarded (``discarded`` counts them) until it is taken: the learner mixes the first message sent after
      its previous read. The official sender skips writing instead; galakit's transports do not tell a sender
      when its message is read, so the receiver drops what that sender would not have written;
    * ``"sum"`` (push-sum): messages from a sender are added up, since push-sum mass must never be lost;
    * ``"exact"`` (synchronous gossip): every message is kept until the receiver takes the messages of exactly
      its own step, so that each step applies one W_k and the network average is preserved.

    The mailbox recycles its message buffers (a taken or replaced message's buffer holds the next one), so that
    steady-state gossip allocates no memory: fresh multi-megabyte allocations cost more than the copies.
    """

    POLICIES = tuple(WritePolicy)

    def __init__(self, world_size: int, policy: WritePolicy | str = DEFAULT_POLICY):
        if policy not in self.POLICIES:
            fail("policy", policy, ", ".join(repr(str(p)) for p in self.POLICIES))
        self.policy = WritePolicy(policy)
        self.inbox: list[dict[int, tuple[torch.Tensor, float]]] = [{} for _ in range(world_size)]
        self.spare: list[torch.Tensor] = []  # buffers of taken or replaced messages, reused by deliver
        self.last_step = [-1] * world_size   # newest step received from each sender (taken or not)
        self.known_update = [-1] * world_size  # newest update index known of each sender (see ``age``)
        self.stopped = [False] * world_size
        self.received = 0
        self.discarded = 0  # "skip": messages dropped because the sender's previous one was still unread
        self.changed = threading.Condition(threading.RLock())

    def deliver(self, src: int, message: torch.Tensor) -> None:
        """Called by the transport with ``[step, weight, kind, oldest, θ…]`` (the buffer is reused: copy it).
        Messages are filed under their oldest step (staleness counts from it); ``last_step`` keeps the newest."""
        step, weight, kind, oldest = (float(x) for x in message[:HEADER])
        step, oldest = int(step), int(oldest)
        with self.changed:
            if kind == STOP:
                self.stopped[src] = True
            else:
                box, payload = self.inbox[src], message[HEADER:]
                if self.policy == WritePolicy.SUM and box:
                    (first, (total, mass)), = box.items()
                    box[first] = (total.add_(payload), mass + weight)
                elif self.policy == WritePolicy.SKIP and box:
                    self.discarded += 1
                else:
                    if self.policy == WritePolicy.LATEST:
                        self.spare += [vector for vector, _ in box.values()]
                        box.clear()
                    buffer = self.spare.pop() if self.spare else torch.empty_like(payload)
                    box[oldest] = (buffer.copy_(payload), weight)
                self.last_step[src] = max(self.last_step[src], step)
                self.known_update[src] = max(self.known_update[src], step)
                self.received += 1
            self.changed.notify_all()

    def take(self, weights: dict[int, float] | None = None, step: int | None = None,
             out: torch.Tensor | None = None) -> Delivery | None:
        """Consume the messages there (only those of ``step`` if given), each scaled by ``weights[sender]``
        (default 1). Returns their sum (written into ``out`` if given), or None when there is none."""
        with self.changed:
            chosen = [(j, s) for j, box in enumerate(self.inbox) for s in box if step is None or s == step]
            if not chosen:
                return None
            mass = 0.0
            for i, (j, s) in enumerate(chosen):
                vector, weight = self.inbox[j].pop(s)
                scale = 1.0 if weights is None else weights[j]
                if i == 0:
                    total = torch.mul(vector, scale, out=out) if out is not None else vector * scale
                else:
                    total.add_(vector, alpha=scale)
                mass += scale * weight
                self.spare.append(vector)
            return Delivery(total, mass, [j for j, _ in chosen], [s for _, s in chosen])

    def take_one(self, src: int, out: torch.Tensor) -> tuple[int, float] | None:
        """Copy sender ``src``'s oldest waiting message into ``out`` (D,) and consume it. Returns (its step, its
        weight), or None when ``src`` has nothing waiting."""
        with self.changed:
            box = self.inbox[src]
            if not box:
                return None
            step = min(box)
            vector, weight = box.pop(step)
            out.copy_(vector)
            self.spare.append(vector)
            return step, weight

    def heard_of(self, src: int, update: int) -> None:
        """Sender ``src`` has done update ``update`` (over shared memory: its update counter, read by ``poll``)."""
        with self.changed:
            self.known_update[src] = max(self.known_update[src], update)

    def age(self, delivery: Delivery) -> int:
        """How many updates old the delivery's messages are, in their senders' updates: the largest, over the
        messages mixed, of (the newest update this learner knows its sender has made) − (the update it was sent
        at; for a push-sum sum, its oldest). Never negative. Over shared memory the newest update is the sender's
        own counter (exact when mixing); over gloo it is the newest message heard from the sender, a lower bound
        when its later messages are in flight or went to other learners (time-varying schedules)."""
        with self.changed:
            return max(self.known_update[j] - s for j, s in zip(delivery.senders, delivery.steps, strict=True))

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
        start = time.perf_counter()
        with self.changed:
            while not self.ready(senders, step):
                if should_stop is not None and should_stop.is_set():
                    break
                self.changed.wait(timeout=0.1)
        return time.perf_counter() - start

    def ready(self, senders: tuple[int, ...], step: int) -> bool:
        """The condition ``wait_for`` waits for."""
        with self.changed:
            if self.policy == WritePolicy.EXACT:
                return all(self.stopped[j] or step in self.inbox[j] for j in senders)
            return all(self.stopped[j] or self.inbox[j] or self.last_step[j] >= step for j in senders)


class GossipChannel:
    """Send and receive parameter vectors of dimension D between the learners of one process group.

    ``group`` must hold every rank of the run, in order (``dist.new_group()``), so that group ranks are ranks.
    """

    def __init__(self, rank: int, world_size: int, dim: int, policy: WritePolicy | str = DEFAULT_POLICY, group=None):
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
            self._outbox[:HEADER] = header(step, weight)
            self._outbox[HEADER:].copy_(vector)
            self._destinations = tuple(destinations)
            self._cond.notify_all()

    def close(self, timeout: float = 60.0) -> None:
        """Send STOP to every other learner, then wait for the other learners' STOPs (they may still be
        training and sending to us) and for both threads to end."""
        with self._cond:
            while (self._destinations is not None or self._sending) and self._error is None:
                self._cond.wait(timeout=0.1)
            self._outbox[:HEADER] = header(-1, kind=STOP)
            self._destinations = tuple(r for r in range(self.world_size) if r != self.rank)
            self._closing = True
            self._cond.notify_all()
        self._sender.join(timeout)
        self._receiver.join(timeout)
        self._raise_if_failed()

    def poll(self) -> None:
        """Nothing to do: the receiver thread delivers messages as they arrive."""

    def wait_for(self, senders: tuple[int, ...], step: int, should_stop: threading.Event | None = None) -> float:
        """Block until the mailbox holds the messages of ``step`` from ``senders`` (``Mailbox.wait_for``)."""
        self._raise_if_failed()
        return self.mailbox.wait_for(senders, step, should_stop)

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


class Backoff:
    """Sleeps for polling loops: 0.1 ms first, doubling up to 5 ms, so that a short wait stays short and a long
    one does not wake the learner thousands of times a second."""

    def __init__(self, first: float = 1e-4, longest: float = 5e-3):
        self.seconds, self.longest = first, longest

    def sleep(self) -> None:
        time.sleep(self.seconds)
        self.seconds = min(2 * self.seconds, self.longest)


class SharedSlots:
    """Gossip messages in shared memory for learners that galakit starts on one machine: one slot per directed
    edge j → i of the schedule (over all its steps), each ``[step, weight, kind, oldest, θ_1 … θ_D]`` with a "full" flag
    and its own lock. Built by the launcher and handed to every learner (picklable for spawn)."""

    def __init__(self, edges: list[tuple[int, int]], world_size: int, dim: int, mp_context):
        self.index = {edge: k for k, edge in enumerate(sorted(set(edges)))}
        self.slots = torch.zeros(len(self.index), HEADER + dim).share_memory_()
        self.full = torch.zeros(len(self.index), dtype=torch.bool).share_memory_()
        self.stopped = torch.zeros(world_size, dtype=torch.bool).share_memory_()
        self.updates = torch.full((world_size,), -1, dtype=torch.int64).share_memory_()  # each sender's newest post
        self.locks = [mp_context.Lock() for _ in self.index]


class SharedMemoryChannel:
    """``GossipChannel``'s interface over ``SharedSlots``: no threads and no sockets.

    ``post`` writes θ into the slot of each edge rank → destination. A message the receiver has not taken yet is
    replaced (``dropped`` counts the posts that replaced one) unless ``keep_every_message``: then push-sum adds the
    new message to it (sums of push-sum messages are what the receiver would add up anyway), and synchronous gossip
    waits until the receiver has polled it into its mailbox. Under the "skip" policy the message waiting there
    stays and the post skips that slot (``dropped`` counts it too): with the mailbox, which keeps an unread message
    until it is taken, the receiver mixes the first message sent after its previous read, as the official code's
    sender, which skips writing while its message is unread, makes it. ``poll`` moves the messages waiting in the
    slots of edges j → rank into the same ``Mailbox`` the gloo transport fills, so both transports mix alike.
    """

    def __init__(self, rank: int, world_size: int, dim: int, slots: SharedSlots,
                 policy: WritePolicy | str = DEFAULT_POLICY):
        self.rank, self.shared = rank, slots  # (dim: GossipChannel's signature; the slots know their size)
        self.mailbox = Mailbox(world_size, policy)
        self.sent = self.dropped = 0
        self._inbound = [(j, k) for (j, i), k in slots.index.items() if i == rank]

    def post(self, vector: torch.Tensor, step: int, destinations: tuple[int, ...], weight: float = 1.0,
             keep_every_message: bool = False) -> None:
        replaced = False
        self.shared.updates[self.rank] = step  # before the slots: a receiver never sees a message newer than this
        for dst in destinations:
            k = self.shared.index[(self.rank, dst)]
            must_wait = keep_every_message and self.mailbox.policy != WritePolicy.SUM
            pause = Backoff()
            while must_wait and self.shared.full[k] and not self.shared.stopped[dst]:
                self.poll()  # take our own messages meanwhile, so that two learners never wait on each other
                pause.sleep()
            with self.shared.locks[k]:
                slot, accumulate = self.shared.slots[k], bool(self.shared.full[k])
                if accumulate and self.mailbox.policy == WritePolicy.SKIP:  # the unread message stays
                    replaced = True
                    continue
                if accumulate and keep_every_message:  # push-sum: add to the waiting message (keeps its oldest step)
                    slot[HEADER:].add_(vector)
                    slot[1] += weight
                else:
                    replaced |= accumulate
                    slot[HEADER:].copy_(vector)
                    slot[1], slot[3] = weight, float(step)
                slot[0], slot[2] = float(step), PARAMS
                self.shared.full[k] = True
        self.sent += 1
        self.dropped += int(replaced)

    def poll(self) -> None:
        """Deliver the messages waiting for this learner, and note the senders that have stopped."""
        for j, k in self._inbound:
            stopped = bool(self.shared.stopped[j])  # read first: then j's last message is in the slot already
            self.mailbox.heard_of(j, int(self.shared.updates[j]))
            if self.shared.full[k]:
                with self.shared.locks[k]:
                    self.mailbox.deliver(j, self.shared.slots[k])
                    self.shared.full[k] = False
            if stopped and not self.mailbox.stopped[j]:
                self.mailbox.deliver(j, header(-1, kind=STOP))

    def wait_for(self, senders: tuple[int, ...], step: int, should_stop: threading.Event | None = None) -> float:
        """Poll until the mailbox holds the messages of ``step`` from ``senders`` (see ``Mailbox.wait_for``)."""
        start, pause = time.perf_counter(), Backoff()
        self.poll()
        while not self.mailbox.ready(senders, step) and not (should_stop is not None and should_stop.is_set()):
            pause.sleep()
            self.poll()
        return time.perf_counter() - start

    def close(self, timeout: float = 60.0) -> None:
        """Tell the other learners that this one has stopped (nothing to drain and no ``timeout`` to wait: the
        slots outlive us)."""
        self.shared.stopped[self.rank] = True
