"""The textfile: the original design's six families, container series, escaping, the histogram."""

import os
import threading

from prometheus_client.parser import text_string_to_metric_families

from ansible.module_utils.zombie_cleaner.record import metrics

DESIGN_FAMILIES = {
    # prometheus_client names a counter family without its _total suffix.
    "zombie_cleaner_zombie_processes_found": "gauge",
    "zombie_cleaner_containers_cleaned": "counter",
    "zombie_cleaner_cleanup_failures": "counter",
    "zombie_cleaner_check_duration_seconds": "histogram",
    "zombie_cleaner_container_operation_timeouts": "counter",
    "zombie_cleaner_tracked_containers": "gauge",
}
ODD = 'we"ird\\name\nline'


def sample_state():
    histogram = None
    for seconds in (0.003, 0.02, 0.2, 40.0):
        histogram = metrics.observe(histogram, seconds)
    return {
        "counters": {"containers_cleaned_total": 4, "cleanup_failures_total": 1,
                     "container_operation_timeouts_total": 2},
        "histogram": histogram,
        "last_run": 1700000000.5,
        "last_scan": {"time": 1700000000.5, "zombies": 7, "host_zombies": 2, "tracked_containers": 2,
                      "confirmed": 1, "containers": [
                          {"container_id": "a" * 64, "namespace": "shop", "pod": "web-1", "container": "app",
                           "runtime": "containerd", "zombies": 3, "pids_current": 61, "pids_max": 64,
                           "pids_pressure": 0.9531},
                          {"container_id": "b" * 64, "namespace": None, "pod": None, "container": ODD,
                           "runtime": "docker", "zombies": 2, "pids_current": 5, "pids_max": None,
                           "pids_pressure": None}]},
    }


def families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_every_family_parses_with_help_and_type():
    text = metrics.render(sample_state())
    parsed = families(text)
    for name, kind in DESIGN_FAMILIES.items():
        assert parsed[name].type == kind, name
    for name, family in parsed.items():
        assert family.documentation, name
    declared = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    helped = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    assert declared == helped and len(declared) == len(set(declared)) == len(parsed)


def test_values_and_label_escaping_round_trip():
    parsed = families(metrics.render(sample_state()))
    value = {s.name: s.value for f in parsed.values() for s in f.samples if not s.labels}
    assert value["zombie_cleaner_zombie_processes_found"] == 7
    assert value["zombie_cleaner_containers_cleaned_total"] == 4
    assert value["zombie_cleaner_host_zombie_processes"] == 2
    assert value["zombie_cleaner_last_success_timestamp_seconds"] == 1700000000.5
    per_container = {s.labels["container"]: s for s in parsed["zombie_cleaner_container_zombie_processes"].samples}
    assert per_container[ODD].value == 2 and per_container[ODD].labels["runtime"] == "docker"
    assert per_container["app"].labels == {"container_id": "a" * 64, "namespace": "shop", "pod": "web-1",
                                          "container": "app", "runtime": "containerd"}
    limits = {s.labels["container"]: s.value for s in parsed["zombie_cleaner_container_pids_max"].samples}
    assert limits == {"app": 64}     # unlimited: no series
    pressure = {s.labels["container"]: s.value for s in parsed["zombie_cleaner_container_pids_pressure"].samples}
    assert pressure == {"app": 0.9531}


def test_histogram_is_cumulative_with_inf_count_and_sum():
    parsed = families(metrics.render(sample_state()))
    samples = parsed["zombie_cleaner_check_duration_seconds"].samples
    buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")]
    assert [le for le, _ in buckets] == sorted(le for le, _ in buckets) and buckets[-1][0] == float("inf")
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)
    assert dict(buckets)[0.005] == 1 and dict(buckets)[0.25] == 3 and dict(buckets)[30.0] == 3
    assert dict(buckets)[float("inf")] == 4
    totals = {s.name: s.value for s in samples}
    assert totals["zombie_cleaner_check_duration_seconds_count"] == 4
    assert abs(totals["zombie_cleaner_check_duration_seconds_sum"] - 40.223) < 1e-9


def test_an_empty_state_still_declares_every_family_with_zero():
    parsed = families(metrics.render({}))
    assert set(DESIGN_FAMILIES) <= set(parsed)
    assert parsed["zombie_cleaner_containers_cleaned"].samples[0].value == 0


def test_a_changed_bucket_layout_starts_a_fresh_histogram():
    old = {"bounds": [1, 2], "counts": [5, 6], "sum": 9.0, "count": 6}
    assert metrics.observe(old, 0.001)["count"] == 1


def test_missing_directory_is_a_warning_and_empty_turns_metrics_off(tmp_path):
    path, problem = metrics.publish(str(tmp_path / "absent"), {})
    assert path is None and "does not exist" in problem and "metrics_textfile_dir" in problem
    assert metrics.publish("", {}) == (None, None)
    path, problem = metrics.publish(str(tmp_path), {})
    assert problem is None and os.stat(path).st_mode & 0o777 == 0o644
    assert os.listdir(str(tmp_path)) == [metrics.TEXTFILE_NAME]    # no temp file left behind


def test_a_reader_never_sees_a_partial_file(tmp_path):
    # Large enough that a non-atomic write would be caught half done.
    state = sample_state()
    state["last_scan"]["containers"] = [dict(state["last_scan"]["containers"][0], container_id="%064x" % index)
                                        for index in range(3000)]
    text = metrics.render(state)
    path = tmp_path / metrics.TEXTFILE_NAME
    metrics.write_textfile(str(tmp_path), text)
    done = threading.Event()
    seen = []

    def reader():
        while not done.is_set():
            seen.append(path.read_text())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(30):
            metrics.write_textfile(str(tmp_path), text)
    finally:
        done.set()
        thread.join()
    assert len(seen) > 5
    assert all(read == text for read in seen), "a reader saw a partial textfile"
