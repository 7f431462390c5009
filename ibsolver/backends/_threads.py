"""The thread count behind ``n_threads=None``: measured, not assumed.

Threads split an iteration's rows; every iteration then ends in barriers. On free cores
that pays once a thread's share of an iteration is large against a barrier (microseconds)
and the start of a parallel region (tens of microseconds when the pool sleeps). On a busy
machine it does not: a team member that the scheduler preempts holds every barrier for a
scheduler slice (milliseconds), so two threads were 10-15x slower than one on 30
microsecond iterations, and 1.1-1.3x slower on 2-5 ms ones, with the other core busy. No
fixed work threshold is right on both, so the default decides in two steps:

1. A static gate: only problems whose per-thread share of one iteration is at least
   ``MIN_WORK_PER_THREAD`` work units (about 0.1 ms on one core: n (k + 24) (|Y| + 16)
   units, some 20 per ns) are considered for more than one thread. Everything smaller
   (every 1024 x 2 curve problem, k <= 32) runs on one thread without measuring.
2. For the rest, the calls measure themselves: per size class (log2 of the work, and |Y|) the
   policy keeps a running estimate of the seconds per iteration per work unit on one
   thread and on all threads, uses the faster, and re-measures the other after the calls
   of the chosen one have taken ``EXPLORE_RATIO`` times as long as the other's last call,
   so that a change of load is noticed while a wrong trial costs at most about
   1/EXPLORE_RATIO of the time. The first call of a class runs on one thread.

The choice changes only the round-off of a result (rows are reduced in a fixed order for a
given thread count), never which clusters or which iterations there are. An explicit
``n_threads`` is used as given.
"""
from __future__ import annotations

import math
import threading
import time

#: a thread's share of one iteration, in work units n (k + 24) (|Y| + 16), below which
#: one thread is used without measuring (about 0.1 ms of one core)
MIN_WORK_PER_THREAD = 2_000_000

#: re-measure the mode not in use after the calls in use took this many times its last call
EXPLORE_RATIO = 20.0

#: weight of a new sample in the running estimate of the mode in use (a trial of the other
#: mode replaces its estimate, which is stale by then)
SMOOTHING = 0.5


def work_units(n: int, k: int, m: int) -> float:
    """The work of one iteration: n (k + 24) (|Y| + 16) (a row's fixed cost counts as 24
    clusters; as in the C++ kernel's rule for tiny problems)."""
    return float(n) * (k + 24.0) * (m + 16.0)


class _Class:
    __slots__ = ("est", "last_call", "since_other", "mode")

    def __init__(self):
        self.est = {}        # mode -> seconds per iteration per work unit
        self.last_call = {}  # mode -> seconds of its last call
        self.since_other = 0.0  # seconds spent in the current mode since the other was tried
        self.mode = 1


class ThreadPolicy:
    """Chooses between one thread and ``available()`` threads for ``n_threads=None``."""

    def __init__(self, available):
        self._available = available  # callable: the thread count None means (env respected)
        self._classes = {}
        self._lock = threading.Lock()

    def candidates(self, n: int, k: int, m: int) -> int:
        """The most threads worth considering: 1 below the static gate."""
        cap = int(work_units(n, k, m) // MIN_WORK_PER_THREAD)
        return max(1, min(int(self._available()), cap, n))

    def choose(self, n: int, k: int, m: int):
        """(threads, key): the thread count for this call and what to pass to record()."""
        top = self.candidates(n, k, m)
        if top <= 1:
            return 1, None
        # (per |Y| too: the work units weigh a row's clusters and columns well within one
        # table but not across widths. 1024 x 256 x 64 costs 2.3x more per unit than
        # 4096 x 256 x 2 on one thread; sharing a class, the second inherited the first's
        # estimates and stayed on two threads, 1.3x slower than one with the other core busy)
        key = (int(math.log2(work_units(n, k, m))), m, top)
        with self._lock:
            c = self._classes.get(key)
            if c is None:
                c = self._classes[key] = _Class()
                return 1, key
            other = top if c.mode == 1 else 1
            if c.since_other >= EXPLORE_RATIO * c.last_call.get(other, 0.0):
                return other, key
            return c.mode, key

    def record(self, key, threads: int, work: float, seconds: float, n_iter: int):
        """Feeds back the wall time of a call made with choose()'s answer."""
        if key is None or n_iter <= 0:
            return
        sample = seconds / (n_iter * work)
        with self._lock:
            c = self._classes[key]
            old = c.est.get(threads)
            if threads == c.mode and old is not None:
                c.est[threads] = old + SMOOTHING * (sample - old)
                c.since_other += seconds
            else:  # a trial of the other mode: its old estimate is stale, replace it
                c.est[threads] = sample
                c.since_other = 0.0
            c.last_call[threads] = seconds
            top = key[-1]
            e1, et = c.est.get(1), c.est.get(top)
            if e1 is not None and et is not None:
                new_mode = top if et < e1 else 1
                if new_mode != c.mode:
                    c.mode = new_mode
                    c.since_other = 0.0

    def timed(self, n: int, k: int, m: int, call):
        """Runs call(threads) with the chosen thread count and records its time; call
        returns (result, n_iter)."""
        threads, key = self.choose(n, k, m)
        start = time.perf_counter()
        result, n_iter = call(threads)
        self.record(key, threads, work_units(n, k, m), time.perf_counter() - start, n_iter)
        return result

    def reset(self):
        with self._lock:
            self._classes.clear()
