"""The fleet report's model and its two renderings, from state files."""

import base64
import json

from ansible.module_utils.zombie_cleaner.controller import report


def slurped(state):
    return {"content": base64.b64encode(json.dumps(state).encode()).decode(), "encoding": "base64"}


def container(label, pressure, zombies=2, confirmed=False, pod=True, parents=None):
    return {"container_id": label, "label": label, "runtime": "containerd", "zombies": zombies,
            "pids_current": 10, "pids_max": 100, "pids_pressure": pressure, "sightings": 1, "confirmed": confirmed,
            "pod": "p" if pod else None,
            "parents": parents or [{"name": "app", "pid": 9, "parent_class": "application", "is_init": True}]}


def state(containers, remediations=(), cleaned=0):
    return {"counters": {"containers_cleaned_total": cleaned}, "history": [{"time": 1.0, "zombies": 3}],
            "last_scan": {"time": 1.0, "zombies": 3, "host_zombies": 1, "confirmed": 1, "protected": 0,
                          "containers": containers},
            "remediations": list(remediations)}


def test_problems_are_named_not_fatal():
    nodes = [report.node_from_slurp("a", {"unreachable": True, "msg": "ssh: connect refused"}),
             report.node_from_slurp("b", {"failed": True, "msg": "file not found"}),
             report.node_from_slurp("c", {"content": "!!!notbase64"}),
             report.node_from_slurp("d", None),
             report.node_from_slurp("e", slurped([1, 2]))]
    assert [n.ok for n in nodes] == [False] * 5
    assert nodes[0].unreachable and nodes[0].problem == "unreachable: ssh: connect refused"
    assert nodes[1].problem.startswith("no state file") and nodes[2].problem.startswith("state file unreadable")
    model = report.build(nodes)
    assert model["totals"]["unreachable"] == 1 and model["totals"]["without_state"] == 4
    assert model["totals"]["zombies"] == 0
    assert "| a | unreachable: ssh: connect refused |" in report.markdown(model)


def test_worst_containers_across_nodes_and_totals():
    nodes = [report.node_from_slurp("n1", slurped(state([container("x", 0.5), container("y", None, zombies=9)]))),
             report.node_from_slurp("n2", slurped(state([container("z", 0.97)], cleaned=4)))]
    model = report.build(nodes)
    assert [(c["host"], c["label"]) for c in model["worst_containers"]] == [("n2", "z"), ("n1", "x"), ("n1", "y")]
    assert model["totals"]["remediated"] == 4 and model["totals"]["zombies"] == 6
    assert model["totals"]["host_zombies"] == 2 and model["totals"]["containers"] == 3


def cured(label, parents, runtime="containerd"):
    return {"label": label, "runtime": runtime, "result": "cured", "parents": parents}


def test_repeat_offenders_get_the_prevention_that_fits_the_parent():
    init = [{"name": "node", "pid": 5, "parent_class": "application", "is_init": True}]
    child = [{"name": "worker", "pid": 6, "parent_class": "application", "is_init": False}]
    runtime = [{"name": "containerd-shim", "pid": 4, "parent_class": "runtime", "is_init": False}]
    remediations = [cured("shop/web/app", init), cured("shop/web/app", init), cured("batch", init, "docker"),
                    cured("batch", init, "docker"), cured("shop/jobs/run", child), cured("shop/jobs/run", child),
                    cured("once", init)]
    again = container("shop/web/app", 0.2, confirmed=True)
    model = report.build([report.node_from_slurp("n1", slurped(state([again], remediations)))])
    by_workload = {item["workload"]: item for item in model["repeat_offenders"]}
    assert set(by_workload) == {"shop/web/app", "batch", "shop/jobs/run"}        # "once" was cured once
    assert "shareProcessNamespace: true" in by_workload["shop/web/app"]["advice"][0]
    assert by_workload["shop/web/app"]["confirmed_again_on"] == ["n1"]
    assert "docker run --init" in by_workload["batch"]["advice"][0]
    assert "not the container's PID 1" in by_workload["shop/jobs/run"]["advice"][0]
    runtime_model = report.build([report.node_from_slurp("n1", slurped(state(
        [], [cured("sys", runtime), cured("sys", runtime)])))])
    assert "runtime itself" in runtime_model["repeat_offenders"][0]["advice"][0]


def test_renderings_escape_what_they_show():
    hostile = container("a|b<script>", 0.5)
    model = report.build([report.node_from_slurp("n<1>", slurped(state([hostile])))])
    page = report.html_page(model)
    assert "<script>" not in page and "a|b&lt;script&gt;" in page and "n&lt;1&gt;" in page
    assert "a\\|b&lt;script&gt;" in report.markdown(model) and "<script>" not in report.markdown(model)
    assert report.totals_line(model["totals"]) in page.replace("&#x27;", "'")
