#!/usr/bin/env python3
"""Interleaved timing of commands (scripts/bench.sh, scripts/bench-gvisor.sh):

    interleave.py OUT.json RUNS WARMUP NAME CMD [NAME CMD ...]

Every round runs each command once, in a new random order (seeded) each round, so a load
change on this shared machine hits every runtime alike (hyperfine would run all of one
command's runs, then the next's). Each run is timed from spawn to reaped exit; a failing run
stops the benchmark."""
import json, os, random, shlex, sys, time
out, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cmds = [(n, shlex.split(c)) for n, c in zip(sys.argv[4::2], sys.argv[5::2])]
times = {n: [] for n, _ in cmds}
null = os.open(os.devnull, os.O_WRONLY)
fa = [(os.POSIX_SPAWN_DUP2, null, 1)]
rng = random.Random(7)
for r in range(warmup + runs):
    # A new random order every round: with a fixed cyclic order each command always ran right
    # after the same one (nucleus after runc, whose exit leaves the most deferred kernel work).
    order = cmds[:]
    rng.shuffle(order)
    for name, argv in order:
        t0 = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa)
        _, st = os.waitpid(pid, 0)
        dt = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(st) != 0:
            sys.exit(f"bench: {name} failed (status {st}): {shlex.join(argv)}")
        if r >= warmup:
            times[name].append(dt)
json.dump({"results": [{"command": n, "times": times[n]} for n, _ in cmds]}, open(out, "w"))
