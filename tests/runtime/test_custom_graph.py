"""Learners gossip on a graph of the user's own: a networkx graph given as ``Config.topology`` (or read from a file
with ``read_graph``) is the schedule the learners use, with exactly its edges and weights."""

import json

import networkx as nx
import numpy as np
import pytest
import torch
from support import final_params

import galakit
from galakit.config import Config
from galakit.gossip.topology import from_networkx, mixing_matrix, read_graph
from galakit.rl.models import initial_model
from galakit.runtime.coupling import gossip_schedule
from galakit.runtime.diagnostics import coupling_contraction

# The directed cycle 0→1→2→3→0 with the chord 0→2. Edge (j, i, w): j sends to i and i weighs j's θ by w = W[i, j].
# The weights are column-stochastic (each sender splits its θ: 0 keeps .5 and sends .3 to 1, .2 to 2), not
# row-stochastic, so the learners' division of each row by its sum matters.

EDGES = [(0, 0, 0.5), (0, 1, 0.3), (0, 2, 0.2), (1, 1, 0.6), (1, 2, 0.4), (2, 2, 0.7), (2, 3, 0.3), (3, 3, 0.5),
         (3, 0, 0.5)]
W_BY_HAND = np.array([[0.5, 0.0, 0.0, 0.5],   # row i: what learner i mixes, W[i, j] for each sender j
                      [0.3, 0.6, 0.0, 0.0],
                      [0.2, 0.4, 0.7, 0.0],
                      [0.0, 0.0, 0.3, 0.5]])


def graph(edges=EDGES) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_weighted_edges_from(edges)
    return g


def row_normalised(W: np.ndarray) -> np.ndarray:
    """What a learner mixes: θ_i ← Σ_j W[i, j] θ_j / Σ_j W[i, j] (coupling.Gossip divides by the row's sum)."""
    return W / W.sum(axis=1, keepdims=True)


def test_the_graph_is_the_schedule_of_the_run_and_of_its_consensus_bound():
    cfg = Config(algo="gala", num_learners=4, topology=graph())
    assert np.array_equal(mixing_matrix(graph()), W_BY_HAND)  # the convention: edge (j, i) is W[i, j]
    assert np.array_equal(cfg.topology.mixing_matrix(), W_BY_HAND)
    assert gossip_schedule(cfg, 4) is cfg.topology
    assert coupling_contraction(cfg) == (cfg.topology.rho(), 1)
    with pytest.raises(ValueError, match=r"^num_learners: got 5; accepted: 4, the nodes of the topology's graph"):
        gossip_schedule(cfg, 5)


def test_a_graph_file_gives_the_same_schedule(tmp_path):
    lines = ["# the chorded cycle, one edge 'j i weight' a line", *(f"{j} {i} {w}  # {j} → {i}" for j, i, w in EDGES)]
    (tmp_path / "chorded.txt").write_text("\n".join(lines) + "\n\n")
    from_file = read_graph(tmp_path / "chorded.txt")
    assert from_file.name == "chorded" and np.array_equal(from_file.mixing_matrix(), W_BY_HAND)
    (tmp_path / "chorded.json").write_text(json.dumps({"adjacency": W_BY_HAND.tolist()}))
    assert np.array_equal(read_graph(tmp_path / "chorded.json").mixing_matrix(), W_BY_HAND)
    # no weights (an edge list "j i", a 0/1 matrix): uniform weights, each sender splits 1/(out-degree + 1)
    uniform = from_networkx(nx.DiGraph([(j, i) for j, i, _ in EDGES if i != j])).mixing_matrix()
    (tmp_path / "plain.txt").write_text("".join(f"{j} {i}\n" for j, i, _ in EDGES if i != j))
    (tmp_path / "plain.json").write_text(json.dumps((W_BY_HAND > 0).astype(int).tolist()))
    for name in ("plain.txt", "plain.json"):
        assert np.array_equal(read_graph(tmp_path / name).mixing_matrix(), uniform), name
    assert Config(algo="gala", num_learners=4, topology=from_file).topology == from_file


@pytest.mark.processes
def test_learners_mix_with_exactly_the_edges_and_weights_of_the_graph(tmp_path):
    """lr = 0 (the A2C updates change nothing), learners that start apart, synchronous gossip (every update mixes
    the messages of its own step): after K updates the learners hold X_K = W^K X_0, W the graph's row-normalised
    mixing matrix. Graphs with another W (no chord, uniform weights, no normalisation) predict other X_K."""
    updates = 6
    cfg = Config(env_id="CartPole-v1", algo="gala", num_learners=4, topology=graph(), num_envs=2, num_steps=5,
                 total_timesteps=4 * 2 * 5 * updates, lr=0.0, identical_init=False, sync_freq=0, entropy_coef=0.0,
                 run_dir=str(tmp_path / "run"), progress=False, tensorboard=False, checkpoint_interval=0)
    assert cfg.num_updates == updates
    galakit.train(cfg)
    x0 = torch.stack([torch.nn.utils.parameters_to_vector(initial_model(cfg, r, (4,), 2).parameters())
                      for r in range(4)]).detach().double()
    last = final_params(cfg.run_dir, 4).double()

    def after_gossip(W: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.linalg.matrix_power(W, updates)) @ x0

    expected = after_gossip(row_normalised(mixing_matrix(graph())))
    assert torch.allclose(last, expected, atol=1e-5, rtol=0), float((last - expected).abs().max())
    no_chord = row_normalised(mixing_matrix(graph([e for e in EDGES if e[:2] not in ((0, 2), (0, 0))]
                                                  + [(0, 0, 0.7)])))  # 0 keeps the chord's share
    uniform = row_normalised(from_networkx(nx.DiGraph([e[:2] for e in EDGES if e[0] != e[1]])).mixing_matrix())
    for other in (no_chord, uniform, W_BY_HAND):  # W_BY_HAND: the weights without the division by the row sums
        assert not np.allclose(other, row_normalised(W_BY_HAND))
        assert float((last - after_gossip(other)).abs().max()) > 1e-3
    # a learner's checkpoint and the consensus model (configs of one learner) play like any other
    for checkpoint in (f"{cfg.run_dir}/learner_0", f"{cfg.run_dir}/consensus"):
        assert galakit.evaluate(checkpoint, episodes=1).shape == (1,)
