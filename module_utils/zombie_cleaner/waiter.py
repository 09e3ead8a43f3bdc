# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to wait for something: poll until it holds or the time is up (kubernetes.core's waiter is the model).

Every wait of the job (a process gone, zombies reaped, a task stopped, the kubelet's new container, the
state lock) is a predicate polled here, so each is bounded the same way and none spins past its limit.
ptrace.Tracee.wait_stop is the one exception: it spins before it sleeps, as a stop comes in microseconds.
"""

from __future__ import annotations

import time


def poll_until(predicate, timeout, interval):
    """Call predicate() until it returns a true value or timeout seconds have passed; it is called at least once.

    Returns that true value, or the last (false) one when the time is up. Sleeps interval seconds between calls,
    never past the limit."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        left = deadline - time.monotonic()
        if value or left <= 0:
            return value
        time.sleep(min(interval, left))
