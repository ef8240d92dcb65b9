"""When the cluster a run uses goes away: failing the run, and dropping Ray once nothing of ours calls it.

A Ray call made while Ray shuts down, or still going on in Ray's core as Ray starts again, ends
the whole process; Ray left connected to a dead GCS ends it too. So a gone cluster is dropped
only after the run's threads that call Ray have been told to stop and given time to.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time

from engine.execution import connection, executor_control
from engine.observe.cluster import NODES_TIMEOUT_S, ClusterError

log = logging.getLogger(__name__)

# How long a run's threads are given to stop calling Ray before a gone cluster is dropped: longer than a
# node-list call may take, so none is still inside one then.
QUIET_S = NODES_TIMEOUT_S + 1.0
DROP_AFTER_S = 60.0  # a run that has not ended this long after its cluster went away: drop the cluster anyway


class LostCluster:
    """Why a run's cluster went away (if it did), and the drop that follows."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.gone = False  # the GCS stopped answering (not just a node that left)
        self.letting_go = threading.Event()  # set once the cluster is about to be dropped: make no Ray call

    def lose(self, reason: str, gone: bool, run_ended: threading.Event) -> None:
        """The run cannot go on: end its execution with `reason`.

        A cluster that is `gone` is dropped by the run itself as it ends (`drop`). Should the run not
        end within DROP_AFTER_S, it is dropped from here, before Ray's own limit ends the process.
        """
        self.reason, self.gone = reason, gone
        executor_control.abort_current(ClusterError(reason), stop_loop=gone)
        if gone and not run_ended.wait(DROP_AFTER_S):
            connection.disconnect()

    def drop(self, sampler, node_watch: threading.Thread | None) -> None:
        """Quiet the run's threads that call Ray, then drop the connection to the cluster that went away.

        Each is told to make no further Ray call and given QUIET_S to finish what it is doing. One still
        inside a call then (most often asking the dead GCS for its state) is made to end at its next
        Python step, so that when its call returns it does not go on calling a Ray that is gone.
        """
        self.letting_go.set()
        deadline = time.time() + QUIET_S
        busy = {}
        if sampler and not sampler.stop(final=False, wait_s=QUIET_S):
            busy["the metrics sampler"] = sampler.thread
        loop = executor_control.join_stopped(timeout=max(0.0, deadline - time.time()))
        if loop:
            busy["Ray Data's scheduling loop"] = loop
        if node_watch:
            node_watch.join(timeout=max(0.0, deadline - time.time()))
            if node_watch.is_alive():
                busy["the node watch"] = node_watch
        if busy:
            log.warning("dropping the lost cluster while %s still wait(s) on it", ", ".join(busy))
            for thread in busy.values():
                end_at_next_step(thread)
        connection.disconnect()


def end_at_next_step(thread: threading.Thread) -> None:
    """Have `thread` raise SystemExit as soon as it runs Python again (a thread blocked in C stays blocked).

    Python cannot cancel a thread blocked in a C call (here, Ray's core), so an asynchronous exception
    is the only way to keep it from calling Ray again once that call returns.
    """
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
