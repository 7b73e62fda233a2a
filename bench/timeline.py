#!/usr/bin/env python3
"""Where the time of `quai run --rm IMG true` goes, step by step.

usage: bench/timeline.py RUNS QUAI_COMMAND...

Runs the command RUNS times with QUAI_TIMELINE set (see
crates/engine/src/timeline.rs: the command and the container's monitor
each append "<monotonic µs> <pid> <step>" lines), adds the moments this
script spawned the command and reaped it, and prints for every pair of
consecutive steps the median time between them over the runs, so the
engine's own costs can be told apart from its runtime's (the
shim:runtime-create → shim:runtime-started span).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time


def monotonic_us():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def one_run(command, path):
    env = dict(os.environ, QUAI_TIMELINE=path)
    start = monotonic_us()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    end = monotonic_us()
    marks = [(start, "spawn")]
    with open(path) as f:
        for line in f:
            t, pid, step = line.split(maxsplit=2)
            # The monitor goes on (deleting files) after the command ended.
            if int(t) <= end:
                marks.append((int(t), step.strip()))
    marks.append((end, "reaped"))
    marks.sort()
    return marks


def main():
    runs = int(sys.argv[1])
    command = sys.argv[2:]
    gaps = {}
    order = []
    totals = []
    engine = []
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        for i in range(runs):
            path = os.path.join(tmp, f"run{i}")
            marks = one_run(command, path)
            totals.append((marks[-1][0] - marks[0][0]) / 1000)
            at = {step: t for t, step in marks}
            spans = [("spawn", "shim:runtime-create"), ("shim:runtime-started", "shim:recorded"),
                     ("shim:container-exited", "reaped")]
            if all(a in at and b in at for a, b in spans):
                engine.append(sum(at[b] - at[a] for a, b in spans) / 1000)
            for (t0, a), (t1, b) in zip(marks, marks[1:]):
                key = f"{a} -> {b}"
                if key not in gaps:
                    gaps[key] = []
                    order.append(key)
                gaps[key].append((t1 - t0) / 1000)
    print(f"{'step':52}{'median ms':>10}{'runs':>6}")
    for key in order:
        values = gaps[key]
        print(f"{key:52}{statistics.median(values):10.2f}{len(values):6}")
    print(f"{'total (spawn -> reaped)':52}{statistics.median(totals):10.2f}{len(totals):6}")
    if engine:
        print(f"{'engine (spawn -> runtime-create, runtime-started -> recorded,':52}")
        print(f"{'        container-exited -> reaped)':52}{statistics.median(engine):10.2f}{len(engine):6}")
    print("(the runtime's share: shim:runtime-create -> shim:runtime-started, and the")
    print(" container itself; the engine's figure includes the command's own exec,")
    print(" which its runtime alone pays too)")


if __name__ == "__main__":
    main()
