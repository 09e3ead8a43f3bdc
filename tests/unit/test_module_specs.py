"""Each module's DOCUMENTATION says what its argument spec does (types, defaults, choices, elements, required),
as ansible-test's validate-modules checks for collections: the spec is the one source of every default, the
documentation and the options objects follow it, and a drift fails here."""

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from ansible.module_utils.zombie_cleaner import module_args
from ansible.module_utils.zombie_cleaner.cure import remediate, runtime_cli
from ansible.module_utils.zombie_cleaner.observe import runtimes, scan

ROOT = Path(__file__).resolve().parents[2]
FRAGMENTS = ROOT / "plugins" / "doc_fragments" / "zombie_cleaner.py"
ROLE = ROOT / "roles" / "zombie_cleaner"


def fragment_options(name):
    """The options of doc fragment zombie_cleaner.<name> (plugins/doc_fragments/zombie_cleaner.py)."""
    tree = ast.parse(FRAGMENTS.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.targets[0].id == name.upper():
            return yaml.safe_load(node.value.value)["options"]
    raise AssertionError("no doc fragment zombie_cleaner.%s" % name)


def documented_options(module):
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = dict(doc.get("options") or {})
    for fragment in doc.get("extends_documentation_fragment") or []:
        collection, _, name = fragment.partition(".")
        assert collection == "zombie_cleaner", fragment
        options.update(fragment_options(name))
    return options


def modules_with_a_spec():
    """(module name, its argument spec) for every module in library/ that builds an AnsibleModule."""
    found = []
    for path in sorted((ROOT / "library").glob("*.py")):
        calls = [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.keyword)
                 and node.arg == "argument_spec" and isinstance(node.value, ast.Name)]
        if calls:
            found.append((path.stem, calls[0].value.id))
    return found


def differences(spec, documented, where=""):
    """What the documentation says differently from the spec, option by option (and suboption)."""
    problems = []
    for name in sorted(set(spec) | set(documented)):
        if name not in documented or name not in spec:
            problems.append("%s%s: %s" % (where, name, "not documented" if name not in documented else "not in the spec"))
            continue
        want, doc = spec[name], documented[name]
        for key, default in (("type", "str"), ("default", None), ("choices", None), ("elements", None),
                             ("required", False)):
            if want.get(key, default) != doc.get(key, default):
                problems.append("%s%s: %s is %r in the spec, %r in DOCUMENTATION" % (
                    where, name, key, want.get(key, default), doc.get(key, default)))
        if want.get("options") or doc.get("suboptions"):
            problems += differences(want.get("options") or {}, doc.get("suboptions") or {}, "%s%s." % (where, name))
        if not doc.get("description"):
            problems.append("%s%s: no description" % (where, name))
    return problems


@pytest.mark.parametrize("name, spec_name", modules_with_a_spec())
def test_documentation_matches_the_argument_spec(name, spec_name):
    module = importlib.import_module(name)
    assert differences(getattr(module, spec_name), documented_options(module)) == []


def test_every_module_is_checked():
    assert [name for name, _ in modules_with_a_spec()] >= ["zombie_fleet_report", "zombie_remediate", "zombie_scan"]


def test_a_drift_is_caught():
    spec = {"confirm_count": dict(type="int", default=3), "mode": dict(type="str", choices=["a", "b"])}
    documented = {"confirm_count": {"description": "x", "type": "int", "default": 2},
                  "mode": {"description": "y", "type": "str", "choices": ["a"]}}
    assert differences(spec, documented) == [
        "confirm_count: default is 3 in the spec, 2 in DOCUMENTATION",
        "mode: choices is ['a', 'b'] in the spec, ['a'] in DOCUMENTATION"]


SETTINGS = [(scan.ScanOptions, module_args.SCAN_ARGUMENT_SPEC,
             {"confirm_count": "confirm_count", "process_timeout": "process_timeout",
              "check_interval": "check_interval", "state_path": "state_path", "proc_root": "proc_root",
              "cgroup_root": "cgroup_root", "reap_host_zombies": "reap_host_zombies",
              "whitelist_patterns": "whitelist_patterns"}),
            (remediate.RemediationOptions, module_args.REMEDIATE_ARGUMENT_SPEC,
             {"container_timeout": "container_timeout", "process_timeout": "process_timeout",
              "replacement_wait": "replacement_wait", "max_concurrent": "max_concurrent_containers",
              "max_per_run": "max_remediations_per_run", "dry_run": "dry_run", "reap_in_place": "reap_in_place",
              "allow_pod_shim_kill": "allow_pod_shim_kill", "state_path": "state_path", "proc_root": "proc_root",
              "allow_shim_kill_for_runtime_faults": "allow_shim_kill_for_runtime_faults"})]


@pytest.mark.parametrize("options, spec, attributes", SETTINGS)
def test_options_built_by_name_take_the_spec_defaults_and_leave_the_outputs_off(options, spec, attributes):
    built = options()
    for attribute, parameter in attributes.items():
        value = spec[parameter]["default"]
        if parameter.endswith(("_timeout", "_interval", "_wait")):
            value = {"10s": 10.0, "5m": 300.0, "30s": 30.0}[value]
        assert getattr(built, attribute) == value, attribute
    assert built.runtime_files == {name: spec[name]["default"] for name in module_args.RUNTIME_FILES_SPEC}
    assert built.audit_log.path == "" and built.metrics_textfile_dir is None


@pytest.mark.parametrize("options, spec", [(scan.ScanOptions, module_args.SCAN_ARGUMENT_SPEC),
                                           (remediate.RemediationOptions, module_args.REMEDIATE_ARGUMENT_SPEC)])
def test_options_from_params_use_every_parameter_the_module_was_given(options, spec):
    params = module_args.settings(spec, {"audit_log_path": "/x/audit.log", "metrics_textfile_dir": "/x/prom",
                                         "log_level": "warning", "process_timeout": "7s"})
    built = options.from_params(dict(params, containers=[], host_groups=[]) if "containers" in spec else params)
    assert (built.audit_log.path, built.audit_log.min_level) == ("/x/audit.log", "warning")
    assert built.metrics_textfile_dir == "/x/prom" and built.process_timeout == 7.0


def test_an_unknown_setting_is_refused():
    with pytest.raises(TypeError, match="unknown settings: confirm_cuont"):
        scan.ScanOptions(confirm_cuont=2)


def test_library_defaults_below_the_options_agree_with_the_spec():
    """RuntimeFiles and the runtime CLIs keep their own defaults for callers without options: the same."""
    files = runtimes.RuntimeFiles()
    assert {name: getattr(files, name) for name in module_args.RUNTIME_FILES_SPEC} == {
        name: option["default"] for name, option in module_args.RUNTIME_FILES_SPEC.items()}
    assert runtime_cli.DEFAULT_BINARIES == {
        name: module_args.REMEDIATE_ARGUMENT_SPEC[name + "_bin"]["default"] for name in runtime_cli.DEFAULT_BINARIES}


def test_role_defaults_are_the_modules_defaults():
    """A role variable zombie_cleaner_<option> starts where the module option of that name does."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = {**module_args.SCAN_ARGUMENT_SPEC, **module_args.REMEDIATE_ARGUMENT_SPEC}
    compared = 0
    for name, option in specs.items():
        if "zombie_cleaner_" + name in defaults and "default" in option:
            assert defaults["zombie_cleaner_" + name] == option["default"], name
            compared += 1
    assert compared >= 20


def sample_keys(module, key, nested=None):
    returned = yaml.safe_load(module.RETURN)[key]
    sample = returned["sample"]
    if nested:
        sample = sample[nested]
    return set(sample[0])


def test_return_documents_every_key_of_the_records_the_results_are_made_of():
    """The result's records are made in one place each (to_result, to_cure), and RETURN shows all their keys."""
    import zombie_remediate
    import zombie_scan
    from ansible.module_utils.zombie_cleaner.cure import outcomes
    from ansible.module_utils.zombie_cleaner.observe import records
    assert sample_keys(zombie_scan, "containers") == set(records.ContainerRecord().to_result())
    assert sample_keys(zombie_scan, "host_groups") == set(records.HostGroup().to_result())
    assert sample_keys(zombie_remediate, "outcomes") == set(outcomes.Outcome().to_result())
    assert sample_keys(zombie_scan, "to_cure", "containers") <= set(records.ContainerRecord().to_cure())
