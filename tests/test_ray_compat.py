"""The contract with Ray's internals: what `engine.ray_compat` reads must still be there, and still work.

After changing the Ray pin, run `./dev test tests/test_ray_compat.py`: a failure names what moved.
The last tests fake a Ray outside the supported range and check that runs still run, with the
degraded features named.
"""

import inspect
import threading
import time

import pytest
import ray

from engine import ray_compat
from engine.ray_compat import support
from tests.conftest import finish

PRIVATE_CALLS = {  # module -> {name: parameters we pass, in order}
    "ray._private.internal_api": {"node_stats": ["node_manager_address", "node_manager_port", "include_memory_info"]},
    "ray._private.state": {"actors": []},
    "ray._private.grpc_utils": {"init_grpc_channel": ["address"]},
    "ray._private.services": {
        "canonicalize_bootstrap_address": ["addr"],
        "find_bootstrap_address": ["temp_dir"],
        "find_gcs_addresses": [],
    },
    "ray._private.utils": {"get_runtime_env_info": ["runtime_env", "is_job_runtime_env", "serialize"]},
    "ray._private.authentication.authentication_token_setup": {
        "maybe_enable_token_auth_if_token_available": ["warn_if_disabled"],
    },
    "ray.data._internal.execution.node_trackers.actor_location": {"get_or_create_actor_location_tracker": []},
    "ray.data._internal.stats": {"get_or_create_stats_actor": []},
    "ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator": {
        "get_or_create_autoscaling_coordinator": [],
    },
    "ray.data._internal.utils.cached_ray_internals": {"get_actor_locations": ["logical_actor_ids"]},
    "ray.data._internal.logical.optimizers": {"get_physical_ruleset": []},
    "ray.data._internal.planner": {"create_planner": []},
    "ray.data._internal.logical.rules.operator_fusion": {
        "_canonicalize": ["remote_args"],
        "are_op_remote_args_compatible": ["up_logical_op", "down_logical_op"],
    },
}
PRIVATE_NAMES = {
    "ray._raylet": ["AuthenticationMode", "get_authentication_mode"],
    "ray.data._internal.execution.operators.actor_pool_map_operator": ["ActorPoolMapOperator", "get_actor_locations"],
    "ray.data._internal.execution.operators.task_pool_map_operator": ["TaskPoolMapOperator"],
    "ray.data._internal.execution.operators.base_physical_operator": ["AllToAllOperator"],
    "ray.data._internal.execution.operators.input_data_buffer": ["InputDataBuffer"],
    "ray.data._internal.logical.operators": [
        "AbstractMap", "MapBatches", "RandomShuffle", "Repartition", "StreamingRepartition",
    ],
    "ray.data._internal.logical.rules.operator_fusion": ["FuseOperators", "INHERITABLE_REMOTE_ARGS"],
    "ray.data._internal.execution.resource_manager": ["ResourceManager"],
}  # fmt: skip
PROTO_FIELDS = {  # (module, message) -> fields read or set
    ("gcs_pb2", "GcsNodeInfo"): ["node_id", "node_manager_address", "node_manager_port", "resources_total", "state"],
    ("node_manager_pb2", "GetNodeStatsReply"): ["store_stats", "core_workers_stats"],
    ("common_pb2", "CoreWorkerStats"): ["job_id", "worker_type", "num_executed_tasks", "actor_id"],
    ("node_manager_pb2", "PrestartWorkersRequest"): [
        "language", "job_id", "runtime_env_info", "keep_alive_duration_secs", "num_workers",
    ],
}  # fmt: skip
STORE_FIELDS = ["object_store_bytes_used", "object_store_bytes_avail", "spilled_bytes_total"]


def test_the_installed_ray_is_the_supported_one():
    assert support.unsupported_reason() is None, support.unsupported_reason()


@pytest.mark.parametrize("module", PRIVATE_CALLS)
def test_each_private_function_is_there_and_takes_what_we_pass(module):
    imported = __import__(module, fromlist=["_"])
    for name, params in PRIVATE_CALLS[module].items():
        found = list(inspect.signature(getattr(imported, name)).parameters)
        assert found[: len(params)] == params, f"{module}.{name}{found}"


@pytest.mark.parametrize("module", PRIVATE_NAMES)
def test_each_private_name_imports(module):
    imported = __import__(module, fromlist=["_"])
    for name in PRIVATE_NAMES[module]:
        assert hasattr(imported, name), f"{module}.{name} is gone"


def test_a_ray_started_on_this_machine_is_found_by_the_address_it_left(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("127.0.0.1:6390")  # as `ray start --head` writes it
    found = ray_compat.running_cluster_addresses()
    assert found[0].endswith(":6390")  # first, before any GCS running here; Ray names this machine by its IP


def test_each_proto_field_we_read_exists():
    from ray.core.generated import common_pb2, gcs_pb2, node_manager_pb2, node_manager_pb2_grpc

    modules = {"gcs_pb2": gcs_pb2, "node_manager_pb2": node_manager_pb2, "common_pb2": common_pb2}
    for (module, message), fields in PROTO_FIELDS.items():
        found = getattr(modules[module], message).DESCRIPTOR.fields_by_name
        assert set(fields) <= set(found), f"{message} lacks {set(fields) - set(found)}"
    store = node_manager_pb2.GetNodeStatsReply.DESCRIPTOR.fields_by_name["store_stats"].message_type
    assert set(STORE_FIELDS) <= set(store.fields_by_name)
    assert gcs_pb2.GcsNodeInfo.GcsNodeState.ALIVE is not None and common_pb2.WORKER is not None
    assert hasattr(node_manager_pb2_grpc.NodeManagerServiceStub, "__init__")
    assert "PrestartWorkers" in node_manager_pb2.DESCRIPTOR.services_by_name["NodeManagerService"].methods_by_name


def test_the_executor_and_the_fusion_rule_have_what_we_touch():
    from ray.data._internal.execution.execution_callback import ExecutionCallback
    from ray.data._internal.execution.resource_manager import ResourceManager
    from ray.data._internal.execution.streaming_executor import StreamingExecutor
    from ray.data._internal.logical.optimizers import PhysicalOptimizer
    from ray.data._internal.logical.rules.operator_fusion import FuseOperators

    for hook in ("before_execution_starts", "after_execution_succeeds"):
        assert list(inspect.signature(getattr(ExecutionCallback, hook)).parameters) == ["self", "executor"]
    assert list(inspect.signature(ExecutionCallback.after_execution_fails).parameters) == ["self", "executor", "error"]
    assert issubclass(StreamingExecutor, threading.Thread)
    assert list(inspect.signature(StreamingExecutor.shutdown).parameters)[:2] == ["self", "force"]
    source = inspect.getsource(StreamingExecutor)
    assert "self._shutdown" in source and "self._output_node" in source and "mark_finished" in source
    assert list(inspect.signature(FuseOperators._can_fuse).parameters) == ["self", "down_op", "up_op"]
    assert "_op_map" in inspect.getsource(FuseOperators)
    assert isinstance(inspect.getattr_static(PhysicalOptimizer, "rules"), property)
    assert 0 < ResourceManager.DEFAULT_OBJECT_STORE_MEMORY_LIMIT_FRACTION_NO_RESERVATION <= 1
    assert 0 < ResourceManager.DEFAULT_OBJECT_STORE_MEMORY_LIMIT_FRACTION <= 1


def test_nodes_store_stats_and_token_mode_read_from_the_live_ray(ray_local):
    nodes = ray_compat.list_nodes(3.0)
    assert nodes and all(n.alive and n.manager_port for n in nodes)
    here = nodes[0]
    store = ray_compat.object_store(here.address, here.manager_port)
    assert store.used_bytes >= 0 and store.available_bytes > 0
    assert ray_compat.fresh_workers(here.address, here.manager_port) >= 0
    assert ray_compat.token_auth_enabled() in (True, False)
    assert ray_compat.degraded() == {}


def test_prestart_brings_fresh_workers(ray_local):
    node = ray_compat.list_nodes(3.0)[0]
    before = ray_compat.fresh_workers(node.address, node.manager_port)
    assert ray_compat.prestart(node.address, node.manager_port, 1, 60) is True
    deadline = time.time() + 60
    while ray_compat.fresh_workers(node.address, node.manager_port) <= before and time.time() < deadline:
        time.sleep(0.5)
    assert ray_compat.fresh_workers(node.address, node.manager_port) > before


def slow_udf():
    """An actor-pool UDF slow enough to be seen running (defined here: Ray pickles it by value)."""

    class Slow:
        def __call__(self, batch):
            time.sleep(0.05)
            return batch

    return Slow


def test_the_hooks_fire_the_location_lookup_is_ours_and_stop_ends_the_execution_and_its_actors(ray_local):
    started, ended = [], []
    ray_compat.register_execution_hooks(started.append, ended.append)
    assert ray_compat.bound_actor_location_wait(lambda ref: ray.get(ref, timeout=120))
    asked = ray_compat.actor_location_calls()
    ds = ray.data.range(4000, override_num_blocks=400).map_batches(
        slow_udf(), compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.5
    )
    batches = iter(ds.iter_batches(batch_size=None))
    next(batches)
    assert len(started) == 1 and not ended
    deadline = time.time() + 30
    while (ray_compat.actor_location_calls() == asked or not ray_compat.alive_pool_actors()) and time.time() < deadline:
        time.sleep(0.1)
    assert ray_compat.actor_location_calls() > asked  # Ray Data really asks our lookup during a run
    names = [a["ActorClassName"] for a in ray._private.state.actors().values() if a["State"] == "ALIVE"]
    assert any(n.startswith(ray_compat.cluster_state.POOL_ACTOR_PREFIX) for n in names), names
    executor = started[0]
    assert ray_compat.shut_down(executor)
    ray_compat.loop_thread(executor).join(30)
    assert not ray_compat.loop_thread(executor).is_alive()
    deadline = time.time() + 20
    while ray_compat.alive_pool_actors() and time.time() < deadline:
        time.sleep(0.2)
    assert ray_compat.alive_pool_actors() == 0

    def fails(batch):
        raise ValueError("a failing UDF")

    with pytest.raises(Exception, match="a failing UDF"):
        ray.data.range(2).map_batches(fails).take_all()
    assert len(started) == 2 and ended[-1] is started[-1]  # the failing execution's end fired too


def test_ray_datas_own_actors_start_by_name_in_the_runtime_env_given(ray_local):
    """Ray Data's three bookkeeping actors answer to the names the patch of their options looks for, and the
    patch is undone after (that they run without torch is test_engine_runs')."""
    from ray.actor import ActorClass

    from engine.execution.warm import TORCHLESS

    original = ActorClass.options
    assert ray_compat.start_ray_data_actors(TORCHLESS) is True
    assert ActorClass.options is original
    namespaces = {"datasets_stats_actor": "_dataset_stats_actor"}
    for name in ray_compat.execution.RAY_DATA_ACTORS:
        ray.get_actor(name, namespace=namespaces.get(name, name))  # raises if no actor has that name


def test_fusion_trace_and_store_rule_answer_on_this_ray(ray_local):
    from ray.data import DataContext

    ds = ray.data.range(8).map_batches(lambda b: b).map_batches(slow_udf(), compute=ray.data.ActorPoolStrategy(size=1))
    fusions = ray_compat.fusion_trace(ds)
    assert fusions and all(isinstance(f, ray_compat.Fusion) for f in fusions)
    fraction, source = ray_compat.store_budget_fraction(DataContext.get_current())
    assert 0 < fraction <= 1 and source
    texts = ray_compat.plan_texts(ds)
    assert list(texts) == list(ray_compat.PLAN_TITLES)
    assert ray_compat.executed_operators(texts["Physical Plan (Optimized)"])[0].startswith("ReadRange")


@pytest.fixture
def unsupported_ray():
    support.fake_version("2.99.0")
    yield
    support.fake_version(None)


def test_outside_the_supported_range_every_private_feature_answers_not_available(unsupported_ray):
    assert ray_compat.alive_pool_actors() is None
    assert ray_compat.object_store("127.0.0.1", 1) is None
    assert ray_compat.prestart("127.0.0.1", 1, 1, 60) is False
    assert ray_compat.register_execution_hooks(print, print) is False
    assert set(ray_compat.degraded()) == {"live actor count", "per-node object store", "worker prestart",
                                          "execution hooks"}  # fmt: skip
    line = ray_compat.notice()
    assert line.startswith("Ray 2.99.0 is outside the range this playground is built for (>=2.60,<2.61)")
    assert "worker prestart" in line and line.endswith("Runs still run.") and "\n" not in line


def test_a_feature_whose_internal_moved_degrades_alone():
    @support.private("a moved internal", fallback=lambda: "public answer")
    def moved():
        raise AttributeError("module 'ray._private.x' has no attribute 'y'")

    try:
        assert moved() == "public answer"
        assert support.degraded() == {
            "a moved internal": "AttributeError: module 'ray._private.x' has no attribute 'y'"
        }
        assert support.notice().startswith("Ray's internals moved: not available here: a moved internal")
    finally:
        support.fake_version(None)


def test_on_an_unsupported_ray_a_run_still_runs_with_the_degraded_features_named(ray_local, tiny, unsupported_ray):
    summary = finish(ray_local.submit(tiny.replace(images=48)))
    assert ray_local.wait_idle(60)  # the top-up after the run reads the faked version too: not after the test
    assert summary["status"] == "finished", summary["error"]
    assert summary["rows"] == 48 and summary["model_loads"] == 1
    assert summary["peak_object_store_bytes"] is None  # not available, never a fake 0
    assert {"per-node object store", "live actor count", "execution hooks"} <= set(ray_compat.degraded())
    assert ray_compat.list_nodes(3.0)  # the node list falls back to ray.nodes()
