# -*- coding: utf-8 -*-
# Copyright: zombie-cleaner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zombie_scan's action. On the controller it does what would otherwise cost a task each (a round of
workers over the fleet): check the run's settings with the parsers the modules use on the node and fail
a node whose settings have problems before contacting it, then, after the module ran on the node, keep
the result in results_dir and put a node with nothing to cure in quiet_group (the strategy adds the
group, as for group_by)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

import ansible.module_utils
import yaml
from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.json import get_encoder
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.vars import combine_vars, merge_hash

# The project's module_utils (ansible.cfg `module_utils`, or ANSIBLE_MODULE_UTILS under molecule) are
# packed into module payloads, not put on the controller's import path: add them for the settings check.
for _path in C.DEFAULT_MODULE_UTILS_PATH:
    if _path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(_path)
from ansible.module_utils.zombie_cleaner import config
from ansible.module_utils.zombie_cleaner.record import atomicfile  # noqa: E402

# Options this plugin handles itself; the node never sees them.
CONTROLLER_OPTIONS = ("results_dir", "quiet_group", "settings_check")


def keep_result(results_dir, host, result):
    """Write host's result to results_dir/<host>.scan.json (0600, directory 0700), replacing it whole.
    Through a temp file of a random name (never a fixed one, where a planted link would be followed)."""
    os.makedirs(results_dir, mode=0o700, exist_ok=True)
    path = os.path.join(results_dir, "%s.scan.json" % host)
    # The encoder of the to_nice_json filter: it knows Ansible's own types.
    text = json.dumps(result, cls=get_encoder("tagless"), indent=4, sort_keys=True) + "\n"
    return atomicfile.write(path, text, mode=0o600, durable=False)


# With role_variables, the options set from the role's variable of the same name (zombie_cleaner_<option>)...
ROLE_OPTIONS = ("proc_root", "state_path", "cgroup_root", "audit_log_path", "audit_log_max_size", "audit_log_backups",
                "metrics_textfile_dir", "containerd_state_dir", "docker_data_dir", "crio_storage_dir",
                "podman_storage_dir", "pod_log_dir", "reap_host_zombies", "results_dir")
# ... those from the effective settings (environment > cleaner: > role variables)...
EFFECTIVE_OPTIONS = ("confirm_count", "whitelist_patterns", "process_timeout", "check_interval", "dry_run",
                     "log_level")
# ... and the remediation's settings, checked with the others before anything runs on the node.
CHECKED_ROLE_SETTINGS = ("replacement_wait", "max_remediations_per_run", "module_timeout")


def role_entry_point_spec(role):
    """(entry point, its options) to check the role's variables against, or None when Ansible's own
    validation task ran for this entry point (rolespec_validate true, the default) or there is no spec.

    playbooks/scan.yml turns Ansible's task off (a round of workers over the fleet of its own) and has it done
    here, inside the scan task; a role imported without rolespec_validate: false is checked once, by Ansible."""
    if role is None or getattr(role, "_should_validate", False):
        return None
    entry_point = (getattr(role, "_from_files", None) or {}).get("tasks", "main")
    spec = (_argument_specs(role) or {}).get(entry_point) or {}
    return (entry_point, spec["options"]) if spec.get("options") else None


def _argument_specs(role):
    """The role's meta/argument_specs.yml with the C YAML loader (Ansible's own loader took 60 ms a node);
    Ansible's reader for any other place a role may keep them (meta/main.yml)."""
    path = os.path.join(role._role_path, "meta", "argument_specs.yml")
    if not os.path.isfile(path):
        return role._get_role_argspecs()
    with open(path) as handle:
        return (yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}).get("argument_specs")


def scan_time_limit(module_args, effective):
    """Whole seconds the scan may take on the node (config.module_timeouts: twice process_timeout and a margin, or
    module_timeout when set), from the effective settings the role passes, else the module's own process_timeout."""
    settings = dict(effective)
    settings.setdefault("process_timeout", module_args.get("process_timeout") or "10s")
    return config.module_timeouts(settings, settings.get("module_timeout"))["scan"]


@contextlib.contextmanager
def time_limit(seconds):
    """Fail the task after `seconds`, as the task keyword `timeout` does (a node that hangs fails its task instead
    of stalling every node's run). Here instead of the keyword: templating the keyword cost as much controller CPU
    a node as all the scan's options. A sooner limit of the task's own (its `timeout:`) is left to fire."""
    pending = signal.alarm(0)
    if pending and pending <= seconds:
        signal.alarm(pending)
        yield
        return

    def expire(signum, frame):
        raise TimeLimitReached(seconds)
    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if pending:
            signal.alarm(max(1, pending - int(time.monotonic() - started)))


class TimeLimitReached(Exception):
    def __init__(self, seconds):
        super().__init__("the scan timed out after %d seconds on the node (the limit is twice process_timeout and a "
                         "margin, or zombie_cleaner_module_timeout)" % seconds)
        self.seconds = seconds


def is_quiet(result):
    to_cure = result.get("to_cure") or {}
    return not (to_cure.get("containers") or to_cure.get("host_groups"))


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        module_args = dict(self._task.args)
        if boolean(module_args.pop("role_variables", False), strict=True):
            module_args = dict(self._options_from_role(task_vars), **module_args)
        controller = {name: module_args.pop(name, None) for name in CONTROLLER_OPTIONS}
        for name in ("results_dir", "quiet_group"):
            controller[name] = controller[name] or ""
            if not isinstance(controller[name], str):
                raise AnsibleActionFail("%s must be a string, got %s" % (name, type(controller[name]).__name__))
        check = controller["settings_check"] or {}
        if not isinstance(check, dict) or not isinstance(check.get("effective", {}), dict):
            raise AnsibleActionFail("settings_check must be a mapping with cleaner and effective, got %r" % (check,))
        invalid = self._role_argument_errors(task_vars)
        if invalid:
            return dict(result, failed=True, **invalid)
        problems = config.settings_problems(check.get("cleaner"), check.get("effective", {}))
        if check.get("guardrails") is not None:
            # The fleet-wide guardrail settings, passed for the play's first host only (the decision is made with
            # that host's view of them): checked once per run, not per node.
            from ansible.module_utils.zombie_cleaner.controller import holds
            problems += holds.settings_problems(check["guardrails"])
        if problems:
            # Nothing has run on the node: its state, audit log and metrics stay as they were.
            return dict(result, failed=True, msg="; ".join(problems), settings_problems=problems)
        try:
            with time_limit(scan_time_limit(module_args, check.get("effective") or {})):
                result = merge_hash(result, self._execute_module(module_name="zombie_scan", module_args=module_args,
                                                                 task_vars=task_vars))
        except TimeLimitReached as reached:
            return dict(result, failed=True, msg=str(reached), timedout={"period": reached.seconds})
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        if result.get("failed") or result.get("unreachable"):
            return result

        host = task_vars["inventory_hostname"]
        if controller["results_dir"]:
            # Ansible's warning objects are left out: the node's warnings are in node_warnings as text.
            kept = {key: value for key, value in result.items()
                    if not key.startswith("_ansible") and key not in ("warnings", "deprecations")}
            try:
                result["results_path"] = keep_result(controller["results_dir"], host, kept)
            except OSError as error:
                raise AnsibleActionFail("cannot keep the scan result of %s in %s: %s"
                                        % (host, controller["results_dir"], error))
        # Ansible marks a task that adds a host to a group as changed; the scan's own change is kept
        # here for the task's changed_when.
        result["state_changed"] = bool(result.get("changed"))
        if controller["quiet_group"] and is_quiet(result):
            result["add_group"] = controller["quiet_group"]
            result["parent_groups"] = ["all"]
        return result

    def _role_argument_errors(self, task_vars):
        """What Ansible's validate_argument_spec task would say of the role's variables (the same validator,
        the same templating of every variable the entry point's spec names), or None when they are valid."""
        found = role_entry_point_spec(self._task._role)
        if found is None:
            return None
        entry_point, options = found
        provided = self._templar.template({name: task_vars[name] for name in options if name in task_vars})
        checked = ArgumentSpecValidator(options).validate(
            combine_vars(provided, self._task._role._role_params or {}), validate_role_argument_spec=True)
        if not checked.error_messages:
            return None
        return {"msg": "Validation of arguments failed:\n%s" % "\n".join(checked.error_messages),
                "argument_errors": checked.error_messages,
                "validate_args_context": {"type": "role", "name": self._task._role.get_name(),
                                          "argument_spec_name": entry_point}}

    def _options_from_role(self, task_vars):
        """Every option from the role's variables, each templated on its own (a plain value costs no Jinja compile;
        the role's templated options once cost most of the scan task's controller time), with the precedence of
        config.effective_settings. Guardrails are fleet-wide: checked once, with the play's first host's view of
        them, as zombie_guardrails decides with it."""
        def variable(name):
            if name not in task_vars:
                raise AnsibleActionFail("role_variables needs the zombie_cleaner role's variables: %s is not defined"
                                        % name)
            return self._templar.template(task_vars[name])
        cleaner = self._templar.template(task_vars.get("cleaner"))
        effective = config.effective_settings({key: variable("zombie_cleaner_" + key) for key in config.ORIGINAL_KEYS},
                                              cleaner, os.environ)
        options = {name: variable("zombie_cleaner_" + name) for name in ROLE_OPTIONS}
        options.update((name, effective[name]) for name in EFFECTIVE_OPTIONS)
        checked = dict(effective, **{name: variable("zombie_cleaner_" + name) for name in CHECKED_ROLE_SETTINGS})
        first = task_vars["inventory_hostname"] == (task_vars.get("ansible_play_hosts_all") or [None])[0]
        options["settings_check"] = {"cleaner": cleaner, "effective": checked,
                                     "guardrails": variable("_zombie_cleaner_guardrail_settings") if first else None}
        options["quiet_group"] = variable("_zombie_cleaner_quiet_group")
        return options
