"""A kubelet stand-in: the one part of the kubelet the tests need, restarting a pod's container that exited.

The real kubelet's pod workers see, through CRI ContainerStatus, that a container of a running pod has
exited; with restartPolicy Always they create a new container of the same name in the same sandbox with
attempt = restart count + 1 (log <name>/<attempt>.log) and start it; the exited container is kept as the
pod's last dead one. This does the same, for the containers of the pods it is told to watch, and nothing
else: no back-off unless asked (the kubelet's first restart is immediate, then 10 s doubling to 5 min), no
probes, no sandbox re-creation. It is a thread a test starts and stops, bounded by `deadline` seconds and
`max_restarts`.

    with KubeletStandIn([pod], deadline=60) as kubelet:
        ...                                      # something stops pod.containers["app"]
        new = kubelet.wait_for_restart("app")    # the replacement, attempt + 1
"""

import threading
import time

from helpers.cri import CriError


class KubeletStandIn:
    def __init__(self, pods, deadline=120.0, interval=0.1, backoff=0.0, max_restarts=5, names=None):
        self.pods = list(pods)
        self.deadline = deadline
        self.interval = interval
        self.backoff = backoff
        self.max_restarts = max_restarts
        self.names = set(names) if names else None      # only these container names, if given
        self.restarts = []        # (pod, old container, new container), in order
        self.errors = []
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name="kubelet-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            if self._thread.is_alive():
                raise AssertionError("the kubelet stand-in did not stop")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _exited(self, container):
        status, _ = container.status()
        pb = container.pod.client.pb
        return status.state == pb.CONTAINER_EXITED

    def _run(self):
        ends = time.monotonic() + self.deadline
        while not self._stop.is_set() and time.monotonic() < ends and len(self.restarts) < self.max_restarts:
            for pod in self.pods:
                if pod.sandbox_id is None:
                    continue
                for name, container in list(pod.containers.items()):
                    if self.names is not None and name not in self.names:
                        continue
                    try:
                        if not self._exited(container):
                            continue
                        if self.backoff and self._stop.wait(self.backoff):
                            return
                        new = pod.restart(name)
                    except CriError as error:
                        if pod.sandbox_id is not None:      # not a pod closed under us
                            self.errors.append(str(error))
                        continue
                    with self._changed:
                        self.restarts.append((pod, container, new))
                        self._changed.notify_all()
            self._stop.wait(self.interval)

    def wait_for_restart(self, name, pod=None, timeout=30.0):
        """The replacement the stand-in made for container `name` (of `pod`, or any watched pod)."""
        ends = time.monotonic() + timeout
        with self._changed:
            while True:
                for restarted_pod, _, new in self.restarts:
                    if new.name == name and (pod is None or restarted_pod is pod):
                        return new
                left = ends - time.monotonic()
                if left <= 0:
                    raise AssertionError("the kubelet stand-in made no replacement for %s within %.0fs (errors: %s)"
                                         % (name, timeout, self.errors or "none"))
                self._changed.wait(min(left, 0.5))
