#!/usr/bin/env python3
"""Waits (at most MAX_WAIT seconds) until PCT% of the CPUs were idle over the last 2 seconds:
on a shared machine, start a timed run in a quiet moment. usage: wait_idle.py PCT [MAX_WAIT]"""
import sys
import time


def idle_percent(seconds=2.0):
    def snap():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        return vals[3] + vals[4], sum(vals)
    idle1, total1 = snap()
    time.sleep(seconds)
    idle2, total2 = snap()
    return 100.0 * (idle2 - idle1) / max(1, total2 - total1)


pct, max_wait = float(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
start = time.time()
while time.time() - start < max_wait and idle_percent() < pct:
    pass
