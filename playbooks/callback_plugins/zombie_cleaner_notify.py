# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sends zombie-cleaner's notification once per run, at the end of the playbook, from the controller.

A callback, not a last play: a rollout stopped by max_fail_percentage, or a batch whose nodes all failed, ends
the playbook before any later play, and those are the runs a person must hear about. It sits next to the
playbooks (Ansible loads a playbook directory's callback_plugins/, also under ansible-runner and AWX, which set
their own callback path) and needs no enabling: without zombie_cleaner_notify_urls it does nothing.

Its settings are the role's variables as the first host of the play sees them (group_vars, host_vars, extra
vars, the AWX survey), templated, else the role's defaults. It never prints a URL: they carry tokens.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: zombie_cleaner_notify
type: notification
short_description: Notify through Apprise once per zombie-cleaner run
description:
  - Collects the zombie_scan, zombie_guardrails and zombie_remediate results and the unreachable nodes of the run,
    and at the end sends one message (totals, then failed, recurring, held-back, unreachable and cured items with
    node, pod and workload) to each of zombie_cleaner_notify_urls, when an event of zombie_cleaner_notify_on happened.
  - A notification that cannot be delivered is a warning; the run's result does not change.
"""

import os

import ansible.module_utils
import yaml
from ansible import constants as C
from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible.utils.display import Display

for _path in C.DEFAULT_MODULE_UTILS_PATH + [os.path.join(os.path.dirname(__file__), "..", "..", "module_utils")]:
    _path = os.path.realpath(_path)
    if os.path.isdir(_path) and _path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(_path)
from ansible.module_utils.zombie_cleaner.controller import holds, notify  # noqa: E402

display = Display()
ROLE_DEFAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles", "zombie_cleaner",
                             "defaults", "main.yml")
SETTINGS = ("zombie_cleaner_notify_urls", "zombie_cleaner_notify_on")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "zombie_cleaner_notify"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.collector = notify.RunCollector()
        self.play = None
        self.seen_ours = False

    def v2_playbook_on_play_start(self, play):
        self.play = play

    def _record(self, result, status):
        action = getattr(result._task, "action", "") or ""
        if action.rsplit(".", 1)[-1] not in ("zombie_scan", "zombie_remediate", "zombie_guardrails") \
                and status != "unreachable":
            return
        self.seen_ours = True
        self.collector.task_result(result._host.get_name(), action, dict(result._result), status)

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def _settings(self):
        """The notification settings as the play's first host sees them, templated; role defaults otherwise."""
        with open(ROLE_DEFAULTS) as handle:
            defaults = yaml.safe_load(handle)
        settings = {name: defaults.get(name) for name in SETTINGS}
        if self.play is None:
            return settings
        manager = self.play.get_variable_manager()
        inventory = manager._inventory
        hosts = inventory.get_hosts(self.play.hosts) or inventory.get_hosts("all")
        variables = manager.get_vars(play=self.play, host=hosts[0] if hosts else None)
        try:
            from ansible.template import Templar
            templar = Templar(loader=self.play.get_loader(), variables=variables)
        except ImportError:       # pragma: no cover
            templar = None
        for name in SETTINGS:
            if name in variables:
                value = variables[name]
                settings[name] = templar.template(value) if templar is not None else value
        return settings

    def v2_playbook_on_stats(self, stats):
        if not self.seen_ours:
            return
        try:
            settings = self._settings()
        except Exception as error:  # pylint: disable=broad-except
            display.warning("zombie-cleaner notification not sent: its settings could not be read (%s)" % error)
            return
        urls = settings.get("zombie_cleaner_notify_urls") or []
        if not urls:
            return
        problems = holds.notify_url_problems(urls) + holds.notify_on_problems(settings.get("zombie_cleaner_notify_on")
                                                                             or [])
        if problems:
            display.warning("zombie-cleaner notification not sent: %s" % "; ".join(problems))
            return
        check_mode = bool(context.CLIARGS.get("check"))
        sections = notify.items(self.collector)
        triggered = notify.should_send(sections, settings.get("zombie_cleaner_notify_on"))
        if not triggered or check_mode:
            display.vv("zombie-cleaner notification: nothing to send (%s)" % (
                "check mode" if check_mode else "no event of notify_on"))
            return
        title, body, kind = notify.message(self.collector, sections)
        problems = notify.send(urls, title, body, kind)
        for problem in problems:
            display.warning("zombie-cleaner: %s; the run's result stands" % problem)
        if len(problems) < len(urls):
            display.display("zombie-cleaner notification sent (%s) to %d of %d URLs"
                            % (", ".join(triggered), len(urls) - len(problems), len(urls)))
