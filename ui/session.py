"""What every browser shares (the runner, the operator's policy, Ray's start-up) and what this browser is.

Ray starts (or is joined) in the background: pages draw their controls at once and read the
start-up's state, and a run launched before Ray is up waits for it in the queue.
"""

from __future__ import annotations

import threading
import time

import streamlit as st

from engine import RunConfig, runner
from engine.core import policy
from engine.core.defaults import Machine, local_machine
from engine.core.errors import one_line
from engine.execution import connection
from engine.observe import cluster
from engine.observe.cluster import ClusterError

RETRY_AFTER_S = 10.0  # a start-up that failed is tried again when a page asks after this long
BRIEF_WAIT_S = 60.0  # a new address waits this long for warm-up or a ceiling to let go of Ray (never for a run)


@st.cache_resource(show_spinner=False)
def shared_runner():
    """One run queue per app server: every browser sees the same runs."""
    return runner()


@st.cache_resource(show_spinner=False)
def server_policy() -> policy.Policy:
    """The operator's policy, read once per server (PolicyError: the configuration is wrong)."""
    return policy.load()


class RayStartup:
    """Starting or joining one Ray in the background, and what it found there."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.started = time.time()
        self.failed_at = 0.0
        self.error: str | None = None
        self.info: dict | None = None
        threading.Thread(target=self._start, name="ray-start-up", daemon=True).start()

    def _start(self) -> None:
        try:
            label = connection.connect(self.address, wait_s=BRIEF_WAIT_S, warm=True)
            shared_runner().warm_up()
            self.info = describe_cluster(label)
        except ClusterError as exc:
            self.error = str(exc).splitlines()[0]
        except Exception as exc:  # whatever else stops Ray from starting: one line, never a spinner forever
            self.error = one_line(exc)
        self.failed_at = time.time()

    @property
    def starting(self) -> bool:
        return self.info is None and self.error is None

    def still_current(self) -> bool:
        """False once another address took Ray over (its info would be stale), or a while after it failed."""
        if self.error is not None:
            return time.time() - self.failed_at < RETRY_AFTER_S
        return self.starting or connection.connected_address() == connection.wanted_address(self.address)


@st.cache_resource(show_spinner=False)
def _startups() -> dict[str | None, RayStartup]:
    return {}


_startups_lock = threading.Lock()


def ray_startup(address: str | None) -> RayStartup:
    """The start-up for `address`: begun on first use, begun again once another address has taken Ray over."""
    with _startups_lock:
        startups = _startups()
        found = startups.get(address)
        if found is None or not found.still_current():
            startups[address] = found = RayStartup(address)
        return found


def describe_cluster(label: str) -> dict:
    """What the sidebar and the controls need to know about the connected cluster."""
    alive = [n for n in cluster.nodes() if n.alive]
    return {
        "label": label,
        "nodes": len(alive),
        "cpus": sum(n.cpus for n in alive),
        "gpus": sum(n.gpus for n in alive),
        "object_store_gib": sum(n.object_store_bytes for n in alive) / 2**30,
        "node_table": [
            {
                "node": cluster.node_label(n.address, n.node_id),
                "CPUs": n.cpus,
                "GPUs": n.gpus,
                "object store GiB": round(n.object_store_bytes / 2**30, 1),
            }
            for n in alive
        ],  # fmt: skip
    }


def chosen_address() -> str | None:
    """The Ray address this browser's entry stands for; a refused entry falls back to the local Ray."""
    try:
        return policy.resolve_address(server_policy(), st.session_state.get("ray_address"))
    except policy.PolicyError:
        return None


def cluster_now() -> dict:
    """The cluster the controls are drawn for, at once: Ray's answer once it is up, this machine's until then."""
    startup = ray_startup(chosen_address())
    if startup.info is not None:
        return {**startup.info, "starting": False}
    here = local_machine()
    return {"label": "starting Ray…", "nodes": 0, "cpus": here.cpus, "gpus": here.gpus, "starting": True}


def machine_now() -> Machine:
    """The machine the defaults are picked for (GPU name and memory where this machine can read them)."""
    found = cluster_now()
    if not found["gpus"]:
        return Machine(0.0, found["cpus"] or 1.0)
    return local_machine(found["gpus"], found["cpus"])


def who() -> str | None:
    """Who is at this browser: the signed-in name (None on a one-user playground)."""
    return st.session_state.get("who")


def can_act_on(run) -> bool:
    """Stop, delete and export act on your own runs; an operator (or the one user) acts on every run."""
    return server_policy().is_operator(who()) or getattr(run, "owner", None) == who()


def submit(config: RunConfig, origin: str):
    """Queue a run for this browser's person, within the operator's policy; ConfigError/PolicyError otherwise."""
    config = config.replace(address=chosen_address()).validate()
    found = server_policy()
    policy.check_run(found, config)
    runner_ = shared_runner()
    policy.check_queue(found, who(), runner_.queued())
    return runner_.submit(config, origin=origin, owner=who())


class Submitter:
    """A runner-like door for what submits its own runs (a sweep's cells): each goes through `submit`."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def submit(self, config: RunConfig):
        return submit(config, self.origin)


@st.cache_resource(show_spinner=False)
def comparisons() -> list[dict]:
    """Naive-vs-actor pairs launched from the Compare page, shared by every browser."""
    return []


@st.cache_resource(show_spinner=False)
def verifications() -> dict[str, dict]:
    """What the Advisor predicted for each Verify run, by run id, shared by every browser."""
    return {}


@st.cache_resource(show_spinner=False)
def sweeps() -> list:
    """Sweeps launched from the Sweep page, newest last, shared by every browser."""
    return []
