"""Joining an existing cluster: a 2-node Ray on loopback, driven by the CLI with --address."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_nodes():
    """Two Ray nodes on this machine (Ray's own test cluster); this process does not join it."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "object_store_memory": 150 * 2**20, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=2, object_store_memory=150 * 2**20)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_cli_run_with_address_uses_both_nodes(two_nodes, tmp_path):
    out = tmp_path / "run.json"
    result = subprocess.run(
        [sys.executable, "-m", "engine", "run", "--pipeline", "actor", "--images", "96", "--image-size", "32",
         "--batch-size", "8", "--concurrency", "2", "--block-size-mb", "1", "--address", two_nodes.address,
         "--quiet", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["status"] == "finished" and summary["rows"] == 96
    nodes = summary["nodes"]
    assert len(nodes) == 2, nodes  # both nodes did work, each reported under `nodes`
    assert sum(n["rows"] for n in nodes) == 96 and all(n["model_loads"] == 1 for n in nodes)
    assert all(n["object_store_peak_bytes"] is not None for n in nodes)  # each node's own store was read
    assert len(summary["timeseries"][-1]["object_store_by_node"]) == 2
