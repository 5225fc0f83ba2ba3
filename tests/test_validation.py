"""Every bad value a user can give, in any module, fails in the one format ``field: got X (why); accepted: Y``
(galakit.validation.fail), naming the right field."""

import re

import networkx as nx
import numpy as np
import pytest
import torch

from galakit.config import Config
from galakit.gossip import consensus, rule, simulate, topology
from galakit.rl.envs import make_vec_env
from galakit.rl.evaluate import evaluate
from galakit.validation import InvalidValue


def weighted(edges) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_weighted_edges_from(edges)
    return g


def graph_file(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


CHORDED_CYCLE = nx.DiGraph([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)])
SOME_WEIGHTS = nx.DiGraph([(0, 1), (1, 0)])
SOME_WEIGHTS.add_edge(0, 0, weight=0.5)

# (field, call): each call takes pytest's tmp_path and must fail naming ``field``.
CONFIG_CASES = [
    pytest.param("num_envs", lambda tmp: Config(num_envs=0), id="config-num_envs"),
    pytest.param("lr", lambda tmp: Config(lr=float("nan")), id="config-lr-nan"),
    pytest.param("algo", lambda tmp: Config(algo="ppo"), id="config-algo"),
    pytest.param("seed", lambda tmp: Config(seed=2**32), id="config-seed"),
    pytest.param("preset", lambda tmp: Config.preset("pong"), id="config-preset"),
    pytest.param("topology", lambda tmp: Config(topology="hypercube"), id="config-topology-name"),
    pytest.param("topology", lambda tmp: Config(topology=5), id="config-topology-type"),
    pytest.param("topology", lambda tmp: Config(algo="gala", num_learners=5, topology=CHORDED_CYCLE),
                 id="config-topology-nodes"),
    pytest.param("topology", lambda tmp: Config(num_learners=2, topology=SOME_WEIGHTS), id="config-topology-weights"),
    pytest.param("topology", lambda tmp: Config(num_learners=3, topology=nx.DiGraph([(0, 1), (1, 2)])),
                 id="config-topology-disconnected"),
    pytest.param("topology", lambda tmp: Config(num_learners=2, topology={"steps": "0 1"}),
                 id="config-topology-description"),
    pytest.param("peers", lambda tmp: Config(algo="gala", num_learners=4, topology=CHORDED_CYCLE, peers=2),
                 id="config-peers-custom-graph"),
]
ENVS_CASES = [
    pytest.param("env_id", lambda tmp: make_vec_env(3, 2), id="envs-env_id-type"),
    pytest.param("env_id", lambda tmp: make_vec_env("CartPol-v1", 2), id="envs-env_id-unknown"),
    pytest.param("num_envs", lambda tmp: make_vec_env("CartPole-v1", 0), id="envs-num_envs"),
    pytest.param("seed", lambda tmp: make_vec_env("CartPole-v1", 2, seed=-1), id="envs-seed"),
    pytest.param("num_threads", lambda tmp: make_vec_env("CartPole-v1", 2, num_threads=-1), id="envs-num_threads"),
    pytest.param("backend", lambda tmp: make_vec_env("CartPole-v1", 2, backend="gpu"), id="envs-backend"),
    pytest.param("backend", lambda tmp: make_vec_env("CartPole-v1", 2, backend="ale_vector"),
                 id="envs-backend-not-atari"),
    pytest.param("episodic_life", lambda tmp: make_vec_env("CartPole-v1", 2, episodic_life=True),
                 id="envs-episodic_life"),
    pytest.param("repeat_action_probability", lambda tmp: make_vec_env("Pong", 2, repeat_action_probability=1.5),
                 id="envs-repeat_action_probability"),
    pytest.param("repeat_action_probability",
                 lambda tmp: make_vec_env("CartPole-v1", 2, repeat_action_probability=0.25),
                 id="envs-repeat_action_probability-not-atari"),
]
TOPOLOGY_CASES = [
    pytest.param("n", lambda tmp: topology.build_topology("ring", 0), id="topology-n"),
    pytest.param("n", lambda tmp: topology.bipartite_exponential(7), id="topology-n-odd"),
    pytest.param("peers", lambda tmp: topology.build_topology("ring", 4, peers=4), id="topology-peers"),
    pytest.param("peers", lambda tmp: topology.build_topology("complete", 4, peers=2), id="topology-peers-off-ring"),
    pytest.param("topology", lambda tmp: topology.build_topology("hypercube", 4), id="topology-name"),
    pytest.param("options", lambda tmp: topology.build_topology("torus", 4, degree=3), id="topology-options"),
    pytest.param("weights", lambda tmp: topology.build_topology("ring", 4, weights="equal"), id="topology-weights"),
    pytest.param("weights", lambda tmp: topology.build_topology("ring", 4, weights="metropolis"),
                 id="topology-metropolis-directed"),
    pytest.param("shape", lambda tmp: topology.torus(12, shape=(3, 5)), id="topology-shape"),
    pytest.param("degree", lambda tmp: topology.random_regular(5, 3), id="topology-degree"),
    pytest.param("edge_prob", lambda tmp: topology.erdos_renyi(4, edge_prob=2.0), id="topology-edge_prob"),
    pytest.param("schedule", lambda tmp: topology.Schedule([]), id="schedule-empty"),
    pytest.param("schedule", lambda tmp: topology.Schedule([nx.Graph([(0, 1)])]), id="schedule-undirected"),
    pytest.param("schedule", lambda tmp: topology.Schedule([weighted([(0, 0, 1.0), (2, 2, 1.0)])]),
                 id="schedule-missing-node"),
    pytest.param("schedule", lambda tmp: topology.from_adjacency(np.array([[1.5, -0.5], [0.5, 0.5]])),
                 id="schedule-negative-weight"),
    pytest.param("schedule", lambda tmp: topology.from_adjacency(np.array([[0.0, 1.0], [1.0, 0.0]])),
                 id="schedule-no-self-loop"),
    pytest.param("schedule", lambda tmp: topology.from_adjacency(np.ones((3, 3))), id="schedule-not-stochastic"),
    pytest.param("schedule", lambda tmp: topology.star(6).check("doubly"), id="schedule-not-doubly"),
    pytest.param("schedule", lambda tmp: topology.from_networkx(nx.DiGraph([(0, 1), (1, 2)])),
                 id="schedule-not-strongly-connected"),
    pytest.param("schedule", lambda tmp: topology.Schedule.from_dict({"name": "x", "steps": [[[0, 1]]]}),
                 id="schedule-description"),
    pytest.param("stochastic", lambda tmp: topology.star(4).check("triply"), id="schedule-check-kind"),
    pytest.param("rank", lambda tmp: topology.build_topology("ring", 4).peers(4), id="schedule-rank"),
    pytest.param("step", lambda tmp: topology.build_topology("ring", 4).graph(-1), id="schedule-step"),
    pytest.param("graph", lambda tmp: topology.from_networkx("0 1"), id="graph-type"),
    pytest.param("graph", lambda tmp: topology.from_networkx(nx.Graph([(0, 1), (1, 3)])), id="graph-missing-node"),
    pytest.param("graph", lambda tmp: topology.from_networkx(SOME_WEIGHTS, weights="auto"), id="graph-some-weights"),
    pytest.param("graph", lambda tmp: topology.mixing_matrix(nx.DiGraph([(0, 1)])), id="graph-no-weights"),
    pytest.param("matrix", lambda tmp: topology.from_adjacency(np.ones((2, 3))), id="matrix-shape"),
    pytest.param("matrix", lambda tmp: topology.from_adjacency(np.full((2, 2), np.nan)), id="matrix-nan"),
    pytest.param("W", lambda tmp: topology.check_stochastic(np.array([[0.5, 0.5], [0.25, 0.75]]), "column"),
                 id="W-not-column-stochastic"),
    pytest.param("W", lambda tmp: topology.check_stochastic(np.ones(3)), id="W-not-square"),
    pytest.param("path", lambda tmp: topology.read_graph(tmp / "missing.txt"), id="read_graph-missing"),
    pytest.param("path", lambda tmp: topology.read_graph(graph_file(tmp, "g.txt", "0 1\n1 x\n")),
                 id="read_graph-bad-line"),
    pytest.param("path", lambda tmp: topology.read_graph(graph_file(tmp, "g.txt", "0 1\n1 0\n0 1\n")),
                 id="read_graph-edge-twice"),
    pytest.param("path", lambda tmp: topology.read_graph(graph_file(tmp, "g.txt", "0 1 0.5\n1 0\n")),
                 id="read_graph-some-weights"),
    pytest.param("path", lambda tmp: topology.read_graph(graph_file(tmp, "g.txt", "0 1\n1 2\n")),
                 id="read_graph-not-strongly-connected"),
    pytest.param("path", lambda tmp: topology.read_graph(graph_file(tmp, "g.json", "[[0, 1], [1")),
                 id="read_graph-bad-json"),
    pytest.param("path", lambda tmp: topology.read_graph(graph_file(tmp, "g.json", '{"adjacency": [[0, 1]]}')),
                 id="read_graph-json-not-square"),
]
CONSENSUS_CASES = [
    pytest.param("params", lambda tmp: consensus.stack_parameters(np.zeros((2, 2, 2))), id="consensus-params-3d"),
    pytest.param("params", lambda tmp: consensus.distance_to_average([]), id="consensus-params-empty"),
    pytest.param("params", lambda tmp: consensus.distance_to_average([np.zeros(2), np.zeros(3)]),
                 id="consensus-params-sizes"),
    pytest.param("params", lambda tmp: consensus.stack_parameters([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}]),
                 id="consensus-params-keys"),
    pytest.param("rho", lambda tmp: consensus.epsilon_bound(-0.1, 0.1, 1.0, 4), id="consensus-rho"),
    pytest.param("grad_bound", lambda tmp: consensus.epsilon_bound(0.5, 0.1, float("nan"), 4),
                 id="consensus-grad_bound-nan"),
    pytest.param("n", lambda tmp: consensus.epsilon_bound(0.5, 0.1, 1.0, 0), id="consensus-n"),
    pytest.param("window", lambda tmp: consensus.epsilon_bound(0.5, 0.1, 1.0, 4, window=0), id="consensus-window"),
    pytest.param("k", lambda tmp: consensus.epsilon_bound(0.5, 0.1, 1.0, 4, k=-1), id="consensus-k"),
    pytest.param("rel_error", lambda tmp: consensus.predicted_steps(0.5, -1.0), id="consensus-rel_error"),
]
EVALUATE_CASES = [  # checked before the checkpoint is read
    pytest.param("episodes", lambda tmp: evaluate(str(tmp / "none.pt"), episodes=0), id="evaluate-episodes"),
    pytest.param("num_envs", lambda tmp: evaluate(str(tmp / "none.pt"), num_envs=0), id="evaluate-num_envs"),
    pytest.param("seed", lambda tmp: evaluate(str(tmp / "none.pt"), seed=-1), id="evaluate-seed"),
]
# ---- galakit.gossip.rule and galakit.gossip.simulate
RING4, X4 = topology.build_topology("ring", 4), np.zeros((4, 2))
SIMULATE_CASES = [
    pytest.param("sync_freq", lambda tmp: rule.gossip_action(False, 0, -1), id="rule-sync_freq"),
    pytest.param("messages", lambda tmp: rule.mix(np.zeros(2), [], RING4.peers(0)), id="rule-messages"),
    pytest.param("policy", lambda tmp: rule.resolve_policy("newest", sync_freq=None), id="rule-policy"),
    pytest.param("steps", lambda tmp: simulate.simulate_sync(RING4, X4, -1), id="simulate-steps"),
    pytest.param("x0", lambda tmp: simulate.simulate_sync(RING4, np.zeros((5, 2)), 3), id="simulate-x0"),
    pytest.param("alpha", lambda tmp: simulate.simulate_sync(RING4, X4, 3, alpha=-0.1), id="simulate-alpha"),
    pytest.param("grad_bound", lambda tmp: simulate.simulate_sync(RING4, X4, 3, alpha=0.1, grad_bound=1.0,
                                                                  grad_fn=lambda k, x: x), id="simulate-grad_bound"),
    pytest.param("schedule", lambda tmp: simulate.simulate_async(topology.one_peer_exponential(4), X4, 3,
                                                                 sync_freq=1), id="simulate-async-period"),
    pytest.param("delay", lambda tmp: simulate.simulate_async(RING4, X4, 3, sync_freq=1, delay=-1),
                 id="simulate-delay"),
    pytest.param("policy", lambda tmp: simulate.simulate_async(RING4, X4, 3, sync_freq=1, policy="exact"),
                 id="simulate-policy"),
    pytest.param("update_every", lambda tmp: simulate.simulate_async(RING4, X4, 3, sync_freq=1, update_every=0),
                 id="simulate-update_every"),
    pytest.param("schedule", lambda tmp: simulate.simulate_push_sum(topology.from_adjacency(
        np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.25, 0.25]])), np.zeros(3), 3), id="simulate-push-sum"),
    pytest.param("max_delay", lambda tmp: simulate.random_delays(max_delay=-1), id="simulate-max_delay"),
    pytest.param("drop_prob", lambda tmp: simulate.random_delays(drop_prob=1.5), id="simulate-drop_prob"),
]


@pytest.mark.parametrize("field, call",
                         CONFIG_CASES + ENVS_CASES + TOPOLOGY_CASES + CONSENSUS_CASES + EVALUATE_CASES + SIMULATE_CASES)
def test_a_bad_value_fails_in_the_one_format_naming_its_field(field, call, tmp_path):
    with pytest.raises(ValueError, match=rf"^{re.escape(field)}: got .*; accepted: .+") as err:
        call(tmp_path)
    assert isinstance(err.value, InvalidValue) and err.value.field == field  # raised by validation.fail
