"""Issue 16, items 1, 2 and 5, on real pods: an exec'd process is a parent of its own class, advice fits the pod
(its PID namespace, who the parent is), and pods of one workload are one workload across generations.

The advice is read where people read it, in the fleet report's repeat offenders: a real pod, a real scan, a
check-mode remediation of the scan's record (nothing is done to the pod), and that outcome remembered twice as
a cure, as the remediation would remember it (remediate._remembered), so the workload is a repeat offender.
"""

import json
import os
import random
import time


from ansible.module_utils.zombie_cleaner.controller import report
from ansible.module_utils.zombie_cleaner.cure import remediate
from ansible.module_utils.zombie_cleaner.observe import scan
from ansible.module_utils.zombie_cleaner.record import audit
from helpers import cri
from helpers.zombies import wait_for_zombies

# Kubernetes' alphabet for generated names (no vowels, no 0, 1, 3): pod-template-hash and the 5-character suffix.
GENERATED = "bcdfghjklmnpqrstvwxz2456789"
ORPHANS = ["/bin/sh", "-c", "/bin/sh -c 'for i in 1 2 3; do /bin/sleep 0 & done; exec /bin/sleep 0.5' & "
                            "exec /bin/sleep 100000"]


def generated(length):
    return "".join(random.choice(GENERATED) for _ in range(length))


def scan_once(tmp_path):
    return scan.run_scan(scan.ScanOptions(state_path=str(tmp_path / "state.json"), confirm_count=1,
                                          runtime_files=cri.runtime_files()))


def record_of(result, container):
    return next(record for record in result["containers"] if record["container_id"] == container.id)


def offenders(tmp_path, records):
    """The fleet report's repeat offenders after each record was cured twice (check-mode outcomes, remembered
    as cures), with this scan's state as the node's."""
    options = remediate.RemediationOptions(state_path=str(tmp_path / "state.json"), dry_run=True,
                                           audit_log=audit.AuditLog(None), runtime_files=cri.runtime_files())
    outcomes = remediate.run_remediation(options, records, check_mode=True)["outcomes"]
    assert len(outcomes) == len(records)
    with open(tmp_path / "state.json") as handle:
        state = json.load(handle)
    now = time.time()
    state["remediations"] = [dict(remediate._remembered(outcome, now), result="cured")  # pylint: disable=protected-access
                             for outcome in outcomes for _ in range(2 if len(records) == 1 else 1)]
    return report.build([report.Node("node1", state=state)])["repeat_offenders"]


def test_an_exec_keeping_zombies_is_a_parent_of_its_own_class_with_advice_about_the_probe(pods, tmp_path):
    """Item 1. A hung exec (an exec probe, kubectl exec) keeps zombies; the init makes none: the exec'd
    process is a parent of class exec, and the advice is about the probe, not an init in the image."""
    pod = pods("default", "probe-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", cri.SLEEP)])
    app = pod.containers["app"]
    pod.exec_in_background("app", cri.ZOMBIES)
    exec_pid = pod.exec_keeping_zombies("app", 3)

    record = record_of(scan_once(tmp_path), app)
    assert record["init"]["pid"] == app.init_pid
    parent = next(item for item in record["parents"] if item["pid"] == exec_pid)
    assert parent["parent_class"] == "exec", parent
    assert record["candidate"] is True          # still the container's to cure (its restart ends the exec)
    advice = " ".join(offenders(tmp_path, [record])[0]["advice"])
    assert "probe" in advice.lower() and "shareProcessNamespace" not in advice, advice


def test_a_shared_pid_namespace_pod_whose_app_keeps_its_children_is_not_told_to_share_it(pods, tmp_path):
    """Item 2. The pod already shares its PID namespace (pause is PID 1) and the zombies are direct children of
    the living app, which pause cannot reap: the advice is to fix that process (or run it under tini), never
    to share the PID namespace."""
    pod = pods("default", "shared-" + os.urandom(3).hex(), share_pid=True,
               containers=[cri.ContainerSpec("app", cri.ZOMBIES)])
    app = pod.containers["app"]
    wait_for_zombies(app.init_pid, 3, "the app's own zombies")
    record = record_of(scan_once(tmp_path), app)
    advice = " ".join(offenders(tmp_path, [record])[0]["advice"])
    assert "shareProcessNamespace" not in advice, advice
    assert "PID 1" not in advice, advice                      # pause is PID 1 here, not the app
    assert "wait" in advice, advice                           # fix that process (or run it under tini)


def test_orphans_under_a_non_reaping_pid_1_get_the_init_advice(pods, tmp_path):
    """Item 2, the other side: in a pod of its own PID namespace, orphans end under the container's PID 1,
    which does not reap: tini, dumb-init or shareProcessNamespace."""
    pod = pods("default", "own-" + os.urandom(3).hex(), containers=[cri.ContainerSpec("app", ORPHANS)])
    app = pod.containers["app"]
    wait_for_zombies(app.init_pid, 4, "three orphans and the helper under PID 1")
    record = record_of(scan_once(tmp_path), app)
    advice = " ".join(offenders(tmp_path, [record])[0]["advice"])
    assert "tini" in advice and "shareProcessNamespace" in advice, advice


def test_pods_of_one_deployment_are_one_workload_in_the_scan_and_the_report(pods, tmp_path):
    """Item 5. Two generations of a Deployment's pod (<deployment>-<pod-template-hash>-<5>) and a StatefulSet's
    pods (<statefulset>-<ordinal>): one workload each in the scan records, and two pods of one Deployment
    cured once each are one repeat offender in the fleet report."""
    deployment, template_hash = "web" + os.urandom(2).hex(), generated(10)
    web = [pods("default", "%s-%s-%s" % (deployment, template_hash, generated(5)),
                labels={"app": deployment, "pod-template-hash": template_hash},
                containers=[cri.ContainerSpec("app", cri.ZOMBIES)]) for _ in range(2)]
    statefulset = "db" + os.urandom(2).hex()
    db = pods("default", statefulset + "-0", labels={"app": statefulset}, containers=[cri.ContainerSpec("db", cri.ZOMBIES)])
    for pod in web + [db]:
        wait_for_zombies(pod.containers[next(iter(pod.containers))].init_pid, 3, "zombies in %s" % pod.name)

    result = scan_once(tmp_path)
    first, second = (record_of(result, pod.containers["app"]) for pod in web)
    assert first.get("workload") and first.get("workload") == second.get("workload"), (first.get("workload"),
                                                                                       second.get("workload"))
    assert deployment in str(first["workload"]) and template_hash not in str(first["workload"])
    stateful = record_of(result, db.containers["db"])
    assert statefulset in str(stateful.get("workload")) and db.name not in str(stateful.get("workload"))

    found = offenders(tmp_path, [first, second])
    assert len(found) == 1 and found[0]["remediations"] == 2, found
    assert deployment in found[0]["workload"] and all(pod.name not in found[0]["workload"] for pod in web)
