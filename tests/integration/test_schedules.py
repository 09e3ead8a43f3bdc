"""Every way operators schedule the job, run for real against the SSH test fleet: the cron line and
the GitLab CI and GitHub Actions jobs (their own commands and environment), ansible-runner (the
engine AWX runs jobs with) with the AWX survey's variables, the execution environment
(ansible-builder create), and the AWX payloads checked against the role's argument specs."""

import fcntl
import glob
import json
import os
import re
import shlex
import subprocess

import pytest
import yaml

from ansible.module_utils.zombie_cleaner import config
from helpers.ansible_run import ROOT

SCHEDULES = os.path.join(ROOT, "schedules")
CURE_HOST_ZOMBIES = "-e zombie_cleaner_reap_host_zombies=true"


def load_yaml(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def role_options():
    spec = load_yaml(os.path.join(ROOT, "roles", "zombie_cleaner", "meta", "argument_specs.yml"))
    return spec["argument_specs"]["main"]["options"]


def cron_step_seconds(minute_field):
    """Seconds between runs of a cron minute field of the form */N."""
    match = re.fullmatch(r"\*/(\d+)", minute_field)
    assert match, "expected */N minutes, got %r" % minute_field
    return int(match.group(1)) * 60


def github_env_value(text):
    """${{ vars.X || 'default' }} as it evaluates with no repository variable set."""
    match = re.fullmatch(r"\$\{\{\s*vars\.\w+\s*\|\|\s*'([^']*)'\s*\}\}", str(text))
    return match.group(1) if match else str(text)


def example(name):
    """(command, environment, schedule step in seconds) as the example writes them."""
    if name == "cron":
        lines = [line for line in open(os.path.join(SCHEDULES, "zombie-cleaner.cron"))
                 if line.strip() and not line.startswith("#") and "=" not in line.split()[0]]
        assert len(lines) == 1
        fields = lines[0].split(None, 6)
        assert fields[5] == "root"
        command = fields[6].split(">>")[0].strip()
        command = command.split("&&", 1)[1].strip()          # drop the `cd /opt/zombie-cleaner`
        words = shlex.split(command)
        env = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
        command = " ".join(word for word in words if not re.match(r"^[A-Z_]+=", word))
        return command, env, cron_step_seconds(fields[0])
    if name == "gitlab":
        job = load_yaml(os.path.join(SCHEDULES, "gitlab-ci.yml"))["zombie-cleaner"]
        assert len(job["script"]) == 1
        return job["script"][0], {k: str(v) for k, v in job["variables"].items()}, None
    workflow = load_yaml(os.path.join(SCHEDULES, "github-actions.yml"))
    job = workflow["jobs"]["scheduled-run"]
    step = [item for item in job["steps"] if item.get("name") == "Scheduled run"][0]
    env = {key: github_env_value(value) for key, value in job["env"].items()}
    return step["run"], env, cron_step_seconds(workflow["on"]["schedule"][0]["cron"].split()[0])


def against_fleet(command, fleet):
    """The example's command aimed at the test fleet: its inventory, its key from the inventory."""
    command = re.sub(r"\s--private-key\s+\S+", "", command)
    assert "-i inventory/k8s.yml" in command
    return command.replace("-i inventory/k8s.yml", "-i %s %s" % (fleet.inventory, CURE_HOST_ZOMBIES))


@pytest.mark.parametrize("name", ["cron", "gitlab", "github"])
def test_schedule_example_runs_site_with_its_environment(clean_fleet, tmp_path, name):
    command, env, step = example(name)
    assert command.startswith("scripts/scheduled-run.sh ")
    assert set(env) >= {"DRY_RUN", "CONFIRM_COUNT", "CHECK_INTERVAL"}
    if step is not None:
        assert step == config.parse_duration("CHECK_INTERVAL", env["CHECK_INTERVAL"]), "the schedule and CHECK_INTERVAL disagree"
    made = clean_fleet.zombies("node3", 2)
    run_env = dict(os.environ, **clean_fleet.env(), **env, ZOMBIE_CLEANER_LOCK=str(tmp_path / "lock"),
                   ANSIBLE_NOCOLOR="1")
    outputs = []
    runs = int(env["CONFIRM_COUNT"])
    for index in range(runs):
        if index == runs - 1:
            # The last run as if the schedule had been this fast all along: now the runs span enough time.
            run_env["CHECK_INTERVAL"] = "1s"
        result = subprocess.run(["bash", "-c", against_fleet(command, clean_fleet)], cwd=ROOT, env=run_env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        outputs.append(result.stdout + result.stderr)
        if index < runs - 1:
            assert clean_fleet.zombie_pids("node3") == sorted(made), "cured before the runs spanned the interval"
    last = outputs[-1]
    # Runs seconds apart while CHECK_INTERVAL says 5m: the job says so, and does not confirm on runs alone.
    assert "runs more often than check_interval says" in outputs[1]
    remembered = clean_fleet.state("node3").get("remediations") or []
    if env["DRY_RUN"] == "true":
        assert "would reap 2 zombies in place" in last
        assert clean_fleet.zombie_pids("node3") == sorted(made) and remembered == []
    else:
        assert "reaped_in_place by reap_in_place" in last
        assert clean_fleet.zombie_pids("node3") == [] and remembered[-1]["result"] == "reaped_in_place"


def test_scheduled_runs_never_overlap(clean_fleet, tmp_path):
    lock = tmp_path / "lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)                       # a run still in progress
        result = subprocess.run(["scripts/scheduled-run.sh", "-i", clean_fleet.inventory], cwd=ROOT,
                                env=dict(os.environ, **clean_fleet.env(), ZOMBIE_CLEANER_LOCK=str(lock)),
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "the previous run still holds" in result.stderr
    assert all(clean_fleet.state(name) is None for name in clean_fleet.names)   # nothing ran


def survey():
    with open(os.path.join(SCHEDULES, "awx", "survey_spec.json")) as handle:
        return json.load(handle)


def survey_defaults():
    return {item["variable"]: item["default"] for item in survey()["spec"]}


def test_ansible_runner_runs_the_job_with_the_survey_variables(clean_fleet, tmp_path):
    made = clean_fleet.zombies("node2", 3)
    data = tmp_path / "runner"
    (data / "inventory").mkdir(parents=True)
    (data / "env").mkdir()
    os.symlink(ROOT, data / "project")                            # AWX checks the project out the same way
    (data / "inventory" / "hosts.yml").write_text(open(clean_fleet.inventory).read())
    for name in ("settings", "extravars"):
        (data / "env" / name).write_text(open(os.path.join(SCHEDULES, "runner", "env", name)).read())
    (data / "env" / "envvars").write_text(yaml.safe_dump(dict(clean_fleet.env(), ANSIBLE_NOCOLOR="1")))
    extravars = load_yaml(data / "env" / "extravars")
    # The survey's check_interval (5m) compressed to the test's back-to-back runs.
    extravars.update(zombie_cleaner_confirm_count=2, zombie_cleaner_reap_host_zombies=True,
                     zombie_cleaner_check_interval="1s")
    (data / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    for ident in ("run1", "run2"):
        result = subprocess.run(["ansible-runner", "run", str(data), "-p", "playbooks/site.yml", "--ident", ident],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:]
        artifacts = data / "artifacts" / ident
        assert (artifacts / "status").read_text() == "successful"
        assert (artifacts / "rc").read_text() == "0"
        assert "PLAY RECAP" in (artifacts / "stdout").read_text()
    events = [json.loads(open(path).read()) for path in glob.glob(str(data / "artifacts" / "run2" / "job_events" / "*.json"))]
    scans = {event["event_data"]["host"]: event["event_data"]["res"] for event in events
             if event["event"] == "runner_on_ok" and event["event_data"].get("task_action") == "zombie_scan"}
    assert sorted(scans) == clean_fleet.names
    assert scans["node2"]["zombie_count"] == 3 and scans["node2"]["host_groups"][0]["confirmed"]
    assert all(scans[name]["zombie_count"] == 0 for name in clean_fleet.names if name != "node2")
    cured = [event for event in events if event["event"] == "runner_on_ok"
             and event["event_data"].get("task_action") == "zombie_remediate"]
    assert [event["event_data"]["host"] for event in cured] == ["node2"]
    assert cured[0]["event_data"]["res"]["summary"]["reaped_in_place"] == 1
    stats = [event for event in events if event["event"] == "playbook_on_stats"][0]["event_data"]
    assert not stats["failures"] and not stats["dark"]
    assert clean_fleet.zombie_pids("node2") == [] and made


def test_awx_payloads_match_the_role():
    options = role_options()
    types = {"integer": "int", "text": "str", "multiplechoice": None}
    for item in survey()["spec"]:
        option = options[item["variable"]]                       # every survey variable is a role option
        expected = types[item["type"]]
        if expected:
            assert option["type"] in (expected, "raw"), item["variable"]
        else:
            assert item["default"] in item["choices"]
            assert option["type"] in ("bool", "str")
            if option.get("choices"):
                assert set(item["choices"]) == set(option["choices"])
            if option["type"] == "bool":
                assert set(item["choices"]) == {"true", "false"}
        if item["type"] == "integer":
            assert item["min"] <= item["default"] <= item["max"]
        default = option["default"]
        assert str(item["default"]).lower() == str(default).lower(), (item["variable"], default)
    # ansible-runner's extravars are the survey's answers.
    assert load_yaml(os.path.join(SCHEDULES, "runner", "env", "extravars")) == survey_defaults()
    with open(os.path.join(SCHEDULES, "awx", "job_template.json")) as handle:
        template = json.load(handle)
    assert os.path.exists(os.path.join(ROOT, template["playbook"])) and template["survey_enabled"]
    with open(os.path.join(SCHEDULES, "awx", "schedule.json")) as handle:
        schedule = json.load(handle)
    assert set(schedule["extra_data"]) <= set(survey_defaults())
    rule = dict(part.split("=") for part in schedule["rrule"].split("RRULE:")[1].split(";"))
    step = int(rule["INTERVAL"]) * {"MINUTELY": 60, "HOURLY": 3600}[rule["FREQ"]]
    assert step == config.parse_duration("check_interval", schedule["extra_data"]["zombie_cleaner_check_interval"])


def test_execution_environment_builds_its_context(tmp_path):
    context = tmp_path / "context"
    result = subprocess.run(["ansible-builder", "create", "-f", os.path.join(ROOT, "execution-environment.yml"),
                             "-c", str(context)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (context / "Containerfile").read_text()
    pinned = [line for line in open(os.path.join(ROOT, "requirements.txt")) if line.startswith("ansible-core==")][0].strip()
    assert pinned in containerfile
    assert (context / "_build" / "requirements.txt").read_text() == open(os.path.join(ROOT, "requirements.txt")).read()
    assert "openssh-clients" in (context / "_build" / "bindep.txt").read_text()


def test_example_inventory_carries_the_original_keys(fleet):
    listed = json.loads(subprocess.run(["ansible-inventory", "-i", "inventory/k8s.example.yml", "--list"], cwd=ROOT,
                                       capture_output=True, text=True, check=True).stdout)
    assert listed["k8s_nodes"]["children"] == ["control_plane", "workers"]
    assert len(listed["workers"]["hosts"]) == 12 and len(listed["control_plane"]["hosts"]) == 3
    known = config.ORIGINAL_KEYS
    worker = listed["_meta"]["hostvars"]["worker-07.example.internal"]
    assert set(worker["cleaner"]) <= set(known) and worker["ansible_become"] is True
    assert listed["_meta"]["hostvars"]["cp-01.example.internal"]["zombie_cleaner_max_remediations_per_run"] == 1
    # The generated test fleet has the same groups.
    generated = json.loads(subprocess.run(["ansible-inventory", "-i", fleet.inventory, "--list"], cwd=ROOT,
                                          capture_output=True, text=True, check=True).stdout)
    assert generated["k8s_nodes"]["children"] == ["control_plane", "workers"]
