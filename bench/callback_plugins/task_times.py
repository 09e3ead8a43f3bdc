# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""task_times: when each play and task of a playbook run starts, written as JSON lines to the file named by
ZC_BENCH_TASK_TIMES (benchmarks only: bench/fleet_cost.py enables it for one extra run; the timed rounds run
without it). A task's cost is the time from its start to the next event's."""

from __future__ import annotations

DOCUMENTATION = """
    name: task_times
    type: aggregate
    short_description: start times of plays and tasks, for the benchmarks
    description: Writes one JSON line per play start, task start and the run's end to $ZC_BENCH_TASK_TIMES.
    requirements:
      - enabled with ANSIBLE_CALLBACKS_ENABLED=task_times and ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("ZC_BENCH_TASK_TIMES")

    def _event(self, kind, name):
        if self._path:
            with open(self._path, "a") as handle:
                handle.write(json.dumps({"kind": kind, "name": name, "time": time.time()}) + "\n")

    def v2_playbook_on_play_start(self, play):
        self._event("play", play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._event("task", task.get_name())

    def v2_playbook_on_stats(self, stats):
        self._event("end", "")
