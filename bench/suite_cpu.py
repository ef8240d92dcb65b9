"""Where the test suite's CPU time goes: every process it starts, by kind and by the test that started it.

    python -m bench.suite_cpu [--out FILE] [-- PYTEST_ARGS]

Runs `python -m pytest PYTEST_ARGS` with this module as a pytest plugin (it notes when each test
starts) while sampling, once a second, every process started after the suite began (psutil). A
process's CPU time is its user + system time at its last sample, so one that lives under a second is
missed; a process is put on the test that was running when it started (a worker started to top up
after a run lands on that run's test, even if the next test uses it). The pytest process itself is
not sampled: `/usr/bin/time` gives it.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

CLOCK_ENV = "SUITE_CPU_CLOCK"  # the file the plugin appends "<start time> <test id>" lines to


def pytest_runtest_logstart(nodeid: str, location) -> None:
    """The plugin's one hook: when each test starts."""
    path = os.environ.get(CLOCK_ENV)
    if path:
        with open(path, "a") as f:
            f.write(f"{time.time():.3f} {nodeid}\n")


def kind(cmdline: str) -> str:
    """A process's kind: a Ray worker by its title (`ray::MapWorker`, `ray::IDLE`), else its program and module."""
    if cmdline.startswith("ray::"):
        return re.sub(r"[(\s].*", "", cmdline)
    words = cmdline.split()
    if not words:
        return "?"
    program = os.path.basename(words[0])
    module = next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "-m"), None)
    script = next((os.path.basename(w) for w in words[1:] if w.endswith(".py")), None)
    return " ".join(filter(None, (program, module or script)))


def attribute(processes: list[dict], starts: list[tuple[float, str]]) -> dict:
    """CPU seconds and process counts by kind, and by the test running when each process started."""
    times = [t for t, _ in starts]
    by_kind: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
    by_test: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
    for p in processes:
        i = bisect.bisect_right(times, p["created"]) - 1
        test = starts[i][1] if i >= 0 else "(before the first test)"
        for table, key in ((by_kind, kind(p["cmdline"])), (by_test, test)):
            table[key][0] += p["cpu_s"]
            table[key][1] += 1

    def ranked(table):
        return [{"name": k, "cpu_s": round(v[0], 1), "processes": v[1]} for k, v in
                sorted(table.items(), key=lambda kv: -kv[1][0])]  # fmt: skip

    return {"cpu_s": round(sum(p["cpu_s"] for p in processes), 1), "by_kind": ranked(by_kind),
            "by_test": ranked(by_test)}  # fmt: skip


def sample(suite: subprocess.Popen, began: float) -> list[dict]:
    """Every process started since `began`, sampled each second until the suite ends: its last CPU time."""
    import psutil

    seen: dict[tuple[int, float], dict] = {}
    me = os.getpid()
    while suite.poll() is None:
        for p in psutil.process_iter(["pid", "name", "cmdline", "cpu_times", "create_time"]):
            info = p.info
            if info["create_time"] is None or info["create_time"] < began or info["pid"] in (me, suite.pid):
                continue
            if info["cpu_times"] is None:
                continue
            key = (info["pid"], info["create_time"])
            # an ended process (a zombie) reads an empty command line: keep the one it had when alive
            cmdline = " ".join(info["cmdline"] or [])[:200] or seen.get(key, {}).get("cmdline") or info["name"] or "?"
            cpu = info["cpu_times"].user + info["cpu_times"].system
            seen[key] = {"cmdline": cmdline, "created": info["create_time"], "cpu_s": cpu}
        time.sleep(1.0)
    return list(seen.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="write the whole result as JSON here")
    p.add_argument("--top", type=int, default=25, help="rows of each table printed")
    p.add_argument("pytest_args", nargs="*", help="after --: what pytest gets (default: the whole suite)")
    args = p.parse_args(argv)
    if args.top < 1:
        p.error(f"--top must be at least 1, not {args.top}")
    from bench.run_bench import environment

    _, recorded_env = environment(cuda=False)  # versions and machine, as every result records them
    with tempfile.NamedTemporaryFile("r", suffix=".clock") as clock:
        began = time.time()
        env = {**os.environ, CLOCK_ENV: clock.name}
        suite = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "bench.suite_cpu", *args.pytest_args], env=env)
        processes = sample(suite, began)
        wall = time.time() - began
        starts = [(float(t), name) for t, name in (line.rstrip("\n").split(" ", 1) for line in clock)]
    result = {"command": "python -m bench.suite_cpu " + " ".join(sys.argv[1:] if argv is None else argv),
              **recorded_env, "exit": suite.returncode, "wall_s": round(wall, 1), "tests": len(starts),
              **attribute(processes, starts)}  # fmt: skip
    print(f"\npytest exit {suite.returncode}, {wall:.0f} s; its processes used {result['cpu_s']:.0f} CPU s")
    for table in ("by_kind", "by_test"):
        print(f"\n| {table.replace('_', ' ')} | CPU s | processes |\n|---|---:|---:|")
        for row in result[table][: args.top]:
            print(f"| {row['name']} | {row['cpu_s']:.1f} | {row['processes']} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return suite.returncode


if __name__ == "__main__":
    sys.exit(main())
