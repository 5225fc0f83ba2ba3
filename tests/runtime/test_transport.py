"""The gossip mailbox on its own (no process group): what each policy keeps ("latest", "skip", "sum", "exact"),
and that recycled buffers never change a message that has been taken; the shared-memory channel and two
gossiping learners in one process."""

import pytest
import torch

from galakit.runtime.transport import HEADER, PARAMS, STOP, Mailbox, header


def message(step: int, values, weight: float = 1.0, kind: float = PARAMS) -> torch.Tensor:
    return torch.cat([header(step, weight, kind), torch.tensor(values)])


def test_latest_keeps_each_senders_newest_message_and_sums_them_with_weights():
    box = Mailbox(world_size=3, policy="latest")
    box.deliver(1, message(0, [1.0, 1.0]))
    box.deliver(1, message(1, [2.0, 4.0]))      # replaces step 0
    box.deliver(2, message(5, [10.0, 20.0]))
    assert box.has_all((1, 2)) and box.received == 3
    out = torch.empty(2)
    got = box.take({0: 0.0, 1: 0.5, 2: 0.25}, out=out)
    assert got.total is out
    assert got.total.tolist() == [0.5 * 2 + 0.25 * 10, 0.5 * 4 + 0.25 * 20]
    assert got.weight == 0.75 and got.senders == [1, 2] and got.steps == [1, 5]
    assert box.take() is None and not box.has_all((1,))


def test_a_taken_sum_is_not_changed_by_later_deliveries_into_recycled_buffers():
    box = Mailbox(world_size=2, policy="latest")
    incoming = message(0, [3.0, 3.0])
    box.deliver(1, incoming)
    incoming[HEADER:] = -1.0                      # the receiver reuses its buffer: the mailbox must have copied
    first = box.take().total.clone()
    for step in range(1, 4):                      # these reuse the buffer the first message was in
        box.deliver(1, message(step, [float(step), float(step)]))
    assert first.tolist() == [3.0, 3.0]
    assert box.take().total.tolist() == [3.0, 3.0]  # the newest message (step 3)
    assert len(box.spare) <= 2                    # steady state: buffers are reused, not allocated


def test_skip_keeps_a_senders_unread_message_and_drops_newer_ones_until_it_is_taken():
    box = Mailbox(world_size=2, policy="skip")
    box.deliver(1, message(0, [1.0]))
    box.deliver(1, message(1, [2.0]))             # the step-0 message is unread: this one is dropped
    box.deliver(1, message(2, [3.0]))
    assert box.discarded == 2 and box.received == 3 and box.last_step[1] == 2
    got = box.take()
    assert got.total.tolist() == [1.0] and got.steps == [0]
    assert box.age(got) == 2                      # the sender has made 2 updates since: dropped ones count
    box.deliver(1, message(3, [4.0]))             # read: the next message is kept
    assert box.take().total.tolist() == [4.0] and box.discarded == 2


def test_sum_policy_adds_up_every_message_and_its_mass():
    box = Mailbox(world_size=2, policy="sum")
    box.deliver(1, message(0, [1.0, 2.0], weight=0.5))
    box.deliver(1, message(1, [3.0, 4.0], weight=0.25))
    got = box.take()
    assert got.total.tolist() == [4.0, 6.0] and got.weight == 0.75


def test_exact_policy_hands_out_only_the_messages_of_the_requested_step():
    box = Mailbox(world_size=3, policy="exact")
    box.deliver(1, message(0, [1.0]))
    box.deliver(1, message(1, [7.0]))
    box.deliver(2, message(0, [2.0]))
    assert box.has_all((1, 2), step=0) and not box.has_all((1, 2), step=1)
    assert box.take(step=0).total.tolist() == [3.0]
    assert box.take(step=1).total.tolist() == [7.0]
    assert box.take(step=1) is None


def test_a_stopped_sender_counts_as_present_and_an_unknown_policy_is_refused():
    box = Mailbox(world_size=2)
    box.deliver(1, message(-1, [0.0], weight=0.0, kind=STOP))
    assert box.stopped[1] and box.has_all((1,)) and box.take() is None
    assert box.wait_for((1,), step=3) < 1.0
    with pytest.raises(ValueError, match="policy: got 'fifo'; accepted"):
        Mailbox(world_size=2, policy="fifo")


def two_channels(policy: str):
    """Learners 0 and 1 of one machine, each sending to the other through shared memory."""
    import multiprocessing

    from galakit.runtime.transport import SharedMemoryChannel, SharedSlots

    slots = SharedSlots([(0, 1), (1, 0)], world_size=2, dim=2, mp_context=multiprocessing.get_context("spawn"))
    return [SharedMemoryChannel(rank, 2, 2, slots, policy=policy) for rank in (0, 1)]


def test_shared_memory_channel_delivers_the_newest_message_and_counts_the_replaced_one():
    a, b = two_channels("latest")
    a.post(torch.tensor([1.0, 2.0]), step=0, destinations=(1,))
    a.post(torch.tensor([3.0, 4.0]), step=1, destinations=(1,))   # b has not polled: replaces step 0
    assert b.mailbox.take() is None                                 # nothing until b polls
    b.poll()
    got = b.mailbox.take()
    assert got.total.tolist() == [3.0, 4.0] and got.steps == [1]
    assert a.sent == 2 and a.dropped == 1


def test_under_skip_a_shared_memory_post_leaves_a_message_the_receiver_has_not_polled():
    a, b = two_channels("skip")
    a.post(torch.tensor([1.0, 2.0]), step=0, destinations=(1,))
    a.post(torch.tensor([3.0, 4.0]), step=1, destinations=(1,))   # b has not polled: step 0 stays
    b.poll()
    a.post(torch.tensor([5.0, 6.0]), step=2, destinations=(1,))   # into the empty slot; b's mailbox holds step 0
    b.poll()                                                        # ... so b's mailbox drops it
    got = b.mailbox.take()
    assert got.total.tolist() == [1.0, 2.0] and got.steps == [0] and b.mailbox.age(got) == 2
    assert a.sent == 3 and a.dropped == 1 and b.mailbox.discarded == 1


def test_shared_memory_push_sum_adds_messages_the_receiver_has_not_taken():
    a, b = two_channels("sum")
    a.post(torch.tensor([1.0, 1.0]), step=3, destinations=(1,), weight=0.5, keep_every_message=True)
    a.post(torch.tensor([2.0, 3.0]), step=5, destinations=(1,), weight=0.25, keep_every_message=True)
    b.poll()
    assert b.mailbox.last_step[0] == 5                # the newest step sent, for blocking waits
    got = b.mailbox.take()
    assert got.total.tolist() == [3.0, 4.0] and got.weight == 0.75 and a.dropped == 0
    assert got.steps == [3]                           # staleness counts from the oldest message in the sum


def test_both_transports_file_a_push_sum_under_its_oldest_step():
    box = Mailbox(world_size=2, policy="sum")         # what the gloo receiver does with two separate messages
    box.deliver(1, message(3, [1.0], weight=0.5))
    box.deliver(1, message(5, [2.0], weight=0.25))
    assert box.last_step[1] == 5 and box.take().steps == [3]


def test_shared_memory_channel_reports_a_stopped_sender():
    a, b = two_channels("exact")
    a.close()
    assert b.wait_for((0,), step=5) < 1.0 and b.mailbox.stopped[0]


def test_two_gossiping_learners_in_one_process_mix_and_keep_parameters_of_their_own():
    import multiprocessing

    from galakit.gossip.topology import build_topology
    from galakit.runtime.coupling import Gossip, shared_slots

    schedule = build_topology("ring", 2)
    torch.manual_seed(0)
    models = [torch.nn.Linear(3, 2) for _ in range(2)]
    flat = lambda m: torch.nn.utils.parameters_to_vector(m.parameters()).detach().clone()  # noqa: E731
    before = [flat(m) for m in models]
    slots = shared_slots(schedule, before[0].numel(), multiprocessing.get_context("spawn"))
    learners = [Gossip(schedule, rank, models[rank], slots=slots) for rank in range(2)]
    assert learners[0].after_update(models[0], 0)["gossip_mixed"] == 0   # nothing has arrived yet
    assert learners[1].after_update(models[1], 0)["gossip_mixed"] == 1   # θ_1 ← (θ_1 + θ_0) / 2
    assert torch.allclose(flat(models[1]), (before[0] + before[1]) / 2)
    learners[1].mixed.fill_(123.0)  # the coupling reuses its buffers: the model must not be a view of them
    assert torch.allclose(flat(models[1]), (before[0] + before[1]) / 2)
    assert torch.equal(flat(models[0]), before[0])


# ---------------------------------------------------------------- staleness: the age of the messages mixed


def gossiping_learners(topology: str, n: int, policy: str = "latest"):
    import multiprocessing

    from galakit.gossip.topology import build_topology
    from galakit.runtime.coupling import Gossip, shared_slots

    schedule = build_topology(topology, n)
    torch.manual_seed(0)
    models = [torch.nn.Linear(3, 2) for _ in range(n)]
    dim = sum(p.numel() for p in models[0].parameters())
    slots = shared_slots(schedule, dim, multiprocessing.get_context("spawn"))
    return models, [Gossip(schedule, rank, models[rank], slots=slots, policy=policy) for rank in range(n)]


def test_staleness_is_zero_not_negative_when_the_sender_is_ahead():
    models, learners = gossiping_learners("ring", 2)
    for update in range(10):                          # learner 0 runs ahead: updates 0 … 9, its last message is 9
        learners[0].after_update(models[0], update)
    stats = learners[1].after_update(models[1], 0)    # learner 1, at update 0, mixes the newest message: age 0
    assert stats["gossip_mixed"] == 1 and stats["staleness"] == 0  # (was 0 − 9 = −9: the learners' offset)


@pytest.mark.parametrize(("policy", "mixed", "staleness"), [("latest", 9.0, 0), ("skip", 0.0, 9)])
def test_a_late_reader_mixes_the_newest_message_or_under_skip_the_first_one_sent_since_its_last_read(
        policy, mixed, staleness):
    models, learners = gossiping_learners("ring", 2, policy=policy)
    for update in range(10):                          # learner 0 posts θ = update at updates 0 … 9
        torch.nn.utils.vector_to_parameters(torch.full((8,), float(update)), models[0].parameters())
        learners[0].after_update(models[0], update)
    torch.nn.utils.vector_to_parameters(torch.zeros(8), models[1].parameters())
    stats = learners[1].after_update(models[1], 0)    # θ_1 ← (θ_1 + θ_0's message) / 2
    assert stats["gossip_mixed"] == 1 and stats["staleness"] == staleness
    assert torch.allclose(torch.nn.utils.parameters_to_vector(models[1].parameters()), torch.full((8,), mixed / 2))


def test_staleness_counts_the_senders_updates_made_since_the_message():
    # One-peer exponential, n = 4: learner 0 sends to 1 at step 0, then to 2 at step 1. When learner 1 mixes the
    # step-0 message, its sender has made one more update (counter seen through shared memory): age 1.
    models, learners = gossiping_learners("one_peer_exponential", 4)
    learners[0].after_update(models[0], 0)
    learners[0].after_update(models[0], 1)
    stats = learners[1].after_update(models[1], 0)
    assert stats["gossip_mixed"] == 1 and stats["staleness"] == 1  # (was 0 − 0 = 0)


def test_age_of_a_push_sum_counts_from_its_oldest_message_and_a_behind_sender_is_not_negative():
    box = Mailbox(world_size=3, policy="sum")
    box.deliver(1, message(3, [1.0], weight=0.5))
    box.deliver(1, message(5, [2.0], weight=0.25))     # added to the step-3 message
    box.deliver(2, message(40, [1.0]))                 # a sender far ahead of anyone
    box.heard_of(2, 41)
    assert box.age(box.take()) == 2                    # the larger of sender 1's 5 − 3 and sender 2's 41 − 40
    box.deliver(1, message(6, [1.0]))
    assert box.age(box.take()) == 0
