"""How the actor pipeline shares a cluster's CPUs: what each CPU-only actor asks Ray for."""

import pytest

from engine.core.pipeline import cpu_actor_share
from engine.observe import cluster
from engine.observe.cluster import ClusterError, NodeInfo


def nodes_of(*cpus: float) -> list[NodeInfo]:
    return [NodeInfo(f"n{i}", "127.0.0.1", c, 0.0, 2**30, True) for i, c in enumerate(cpus)]


@pytest.mark.parametrize(
    ("cpus", "actors", "share"),
    [
        ((2,), 1, 1.0),
        ((2,), 2, 0.5),
        ((2, 2), 4, 0.5),  # 0.75 each (one CPU left in all) left half a CPU per node: no read task could start
        ((2, 2), 1, 1.0),
        ((16,), 4, 1.0),
        ((0, 4), 3, 1.0),  # a head without CPUs leaves nothing for reading
    ],
)
def test_each_node_keeps_a_whole_cpu_for_reading_wherever_the_actors_go(monkeypatch, cpus, actors, share):
    monkeypatch.setattr(cluster, "nodes", lambda: nodes_of(*cpus))
    assert cpu_actor_share(actors) == share
    cpu_nodes = [c for c in cpus if c]
    assert actors * share <= sum(cpu_nodes) - len(cpu_nodes)  # so some node always has a whole CPU left


def test_more_actors_than_the_cpus_can_share_are_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(cluster, "nodes", lambda: nodes_of(2))
    with pytest.raises(ClusterError) as refused:
        cpu_actor_share(11)
    message = "asked for 11 CPU actors but 2 CPUs on 1 node(s) fit at most 10; lower concurrency or use GPUs"
    assert str(refused.value) == message
