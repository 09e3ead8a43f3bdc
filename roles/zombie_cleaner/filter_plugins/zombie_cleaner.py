# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's filters, on the controller, with the parsers the modules use on the node (no Jinja copy of them)."""

from __future__ import annotations

import os

import ansible.module_utils
from ansible import constants as C

# The project's module_utils (ansible.cfg `module_utils`, or ANSIBLE_MODULE_UTILS under molecule) are packed
# into module payloads, not put on the controller's import path: add them, as the zombie_scan action does.
for _path in C.DEFAULT_MODULE_UTILS_PATH:
    if _path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(_path)
from ansible.module_utils.zombie_cleaner import config  # noqa: E402


def module_timeouts(settings, override=None):
    """{"scan": seconds, "remediate": seconds} for the `timeout:` of the module tasks, from the effective
    settings (config.module_timeouts). A bad setting never fails here: the settings check reports it."""
    return config.module_timeouts(dict(settings), override)


def effective_settings(role_values, original=None):
    """The settings after the precedence: the controller's environment, then `cleaner:`, then the role's
    variables (config.effective_settings, which the zombie_scan action uses too)."""
    return config.effective_settings(role_values, original, os.environ)


class FilterModule:
    def filters(self):
        return {"zombie_cleaner_module_timeouts": module_timeouts,
                "zombie_cleaner_effective_settings": effective_settings}
