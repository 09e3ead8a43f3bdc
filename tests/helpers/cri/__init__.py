"""Real Kubernetes pods for the tests, made through containerd's CRI (runtime.v1) as the kubelet makes them,
without a kubelet.

    pod = Pod("default", "web-1", containers=[ContainerSpec("app", ZOMBIES), ContainerSpec("sidecar", SLEEP)])
    pod.containers["app"].init_pid       # the container's init, as the runtime reports it (verbose status)
    pod.exec("sidecar", ["/bin/true"])   # ExecSync
    pod.close()                          # stop and remove the sandbox and every container

What the kubelet sends and these helpers send too:
- RunPodSandbox: metadata (name, uid, namespace, attempt 0); log_directory /var/log/pods/<ns>_<pod>_<uid>
  (created first, as the kubelet does); labels = the pod's labels plus io.kubernetes.pod.name/namespace/uid;
  annotations = the pod's annotations plus the kubelet's kubernetes.io/config.seen and config.source;
  linux.cgroup_parent /kubepods/besteffort/pod<uid> (cgroupfs driver, BestEffort QoS); namespace options
  network NODE (host network: no CNI needed), pid CONTAINER or, with share_pid, POD, ipc POD; seccomp
  Unconfined (the kubelet's choice without seccompDefault); no hostname (the kubelet sends none for a
  host-network pod).
- CreateContainer: metadata (name, attempt = restart count); log_path "<name>/<attempt>.log"; the
  kubelet's labels io.kubernetes.container.name and io.kubernetes.pod.name/namespace/uid; its annotations
  io.kubernetes.container.hash/restartCount/terminationMessagePath/terminationMessagePolicy and
  io.kubernetes.pod.terminationGracePeriod; BestEffort resources (cpu shares 2, oom_score_adj 1000); the
  same namespace options as the sandbox; then StartContainer.

Not done (the tests need none of it): volumes and the termination-log mount, service environment
variables, probes, /var/log/containers links, image pulls (images.py imports them instead).

The containerd is the one on $ZC_CONTAINERD_ADDRESS (default /run/containerd/containerd.sock); its state
directory, where the bundles are, is $ZC_CONTAINERD_STATE_DIR (default /run/containerd): point the scan's
containerd_state_dir there (runtime_files()). Every pod carries the label zombie-cleaner-test=1 and one
naming the test session, so cleanup() removes only what tests made.
"""

import json
import os
import shutil
import threading
import time
import uuid
import zlib

from helpers.cri import stubs

ADDRESS = os.environ.get("ZC_CONTAINERD_ADDRESS", "/run/containerd/containerd.sock")
STATE_DIR = os.environ.get("ZC_CONTAINERD_STATE_DIR", "/run/containerd")
CRI_NAMESPACE = "k8s.io"
POD_LOG_ROOT = "/var/log/pods"
CGROUP_ROOT = "/sys/fs/cgroup"
TEST_LABEL = "zombie-cleaner-test"
SESSION_LABEL = "zombie-cleaner-test-session"
SESSION = uuid.uuid4().hex[:12]
BUSYBOX_IMAGE = "localhost/zombie-cleaner-test/busybox:latest"
CALL_TIMEOUT = 60

# PID 1 of the container starts three children that exit at once and never waits for them.
ZOMBIES = ["/bin/sh", "-c", "for i in 1 2 3; do /bin/sleep 0 & done; exec /bin/sleep 100000"]
SLEEP = ["/bin/sleep", "100000"]


def runtime_files():
    """ScanOptions(runtime_files=...) for the containerd these pods run under."""
    return {"containerd_state_dir": STATE_DIR, "pod_log_dir": POD_LOG_ROOT}


def bundle_dir(container_id):
    return os.path.join(STATE_DIR, "io.containerd.runtime.v2.task", CRI_NAMESPACE, container_id)


class CriError(RuntimeError):
    pass


class Runtime:
    """A CRI runtime.v1 client on containerd's socket."""

    def __init__(self, address=ADDRESS):
        import grpc
        self.grpc = grpc
        self.address = address
        self.pb, rpc = stubs.load()
        self.channel = grpc.insecure_channel("unix://" + address)
        self.stub = rpc.RuntimeServiceStub(self.channel)

    def call(self, method, request, timeout=CALL_TIMEOUT):
        try:
            return getattr(self.stub, method)(request, timeout=timeout)
        except self.grpc.RpcError as error:
            raise CriError("CRI %s on %s: %s: %s" % (method, self.address, error.code().name, error.details())) \
                from None

    def version(self):
        return self.call("Version", self.pb.VersionRequest(version="v1"), timeout=10)

    def config(self):
        """The CRI plugin's configuration as the running daemon reports it (Status, verbose)."""
        info = self.call("Status", self.pb.StatusRequest(verbose=True), timeout=10).info
        return json.loads(info.get("config") or "{}")

    def sandboxes(self, labels):
        found = self.call("ListPodSandbox", self.pb.ListPodSandboxRequest(
            filter=self.pb.PodSandboxFilter(label_selector=labels)))
        return list(found.items)

    def remove_sandbox(self, sandbox_id):
        """Stop, then remove (the kubelet's order); removing a sandbox removes its containers."""
        self.call("StopPodSandbox", self.pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
        self.call("RemovePodSandbox", self.pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    def container_status(self, container_id, verbose=False):
        """(ContainerStatus, info dict) of a container."""
        answer = self.call("ContainerStatus", self.pb.ContainerStatusRequest(container_id=container_id,
                                                                               verbose=verbose))
        info = json.loads(answer.info["info"]) if verbose and "info" in answer.info else {}
        return answer.status, info

    def close(self):
        self.channel.close()


_runtime = None
_runtime_lock = threading.Lock()


def runtime():
    """The process's one client on ADDRESS."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime()
        return _runtime


def preflight(client=None):
    """Why real pods cannot run on this containerd, or None. Reads the running daemon's own configuration."""
    client = client or runtime()
    try:
        version = client.version()
    except CriError as error:
        return "containerd's CRI does not answer: %s" % error
    if version.runtime_api_version != "v1":
        return "containerd at %s answers CRI %s, not v1" % (client.address, version.runtime_api_version)
    config = client.config()
    if not config.get("restrictOOMScoreAdj"):
        return ("containerd at %s runs without restrict_oom_score_adj, so runc refuses the sandbox's oomScoreAdj "
                "here (no CAP_SYS_RESOURCE): start it with scripts/containerd-test.toml "
                "(scripts/test-daemons.sh does)" % client.address)
    return None


class ContainerSpec:
    """A container of the pod spec: name, command (ENTRYPOINT), args, environment, image."""

    def __init__(self, name, command=None, args=(), env=None, image=BUSYBOX_IMAGE):
        self.name = name
        self.command = list(command or SLEEP)
        self.args = list(args)
        self.env = dict(env or {})
        self.image = image


class ExecResult:
    def __init__(self, exit_code, stdout, stderr):
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def __repr__(self):
        return "ExecResult(exit_code=%r, stdout=%r, stderr=%r)" % (self.exit_code, self.stdout, self.stderr)


class Container:
    """One attempt of a pod's container, as CRI made it."""

    def __init__(self, pod, spec, attempt, container_id):
        self.pod, self.spec, self.attempt, self.id = pod, spec, attempt, container_id
        self.name = spec.name

    def status(self, verbose=False):
        return self.pod.client.container_status(self.id, verbose)

    @property
    def state(self):
        return self.pod.client.pb.ContainerState.Name(self.status()[0].state)

    @property
    def init_pid(self):
        """The container's init on the host, as the runtime reports it (verbose ContainerStatus)."""
        return int(self.status(verbose=True)[1].get("pid") or 0) or None

    @property
    def bundle(self):
        return bundle_dir(self.id)

    @property
    def log_path(self):
        return os.path.join(self.pod.log_directory, self.name, "%d.log" % self.attempt)

    def exec(self, command, timeout=30):
        return self.pod.exec(self.name, command, timeout, container=self)

    def stop(self, timeout=0):
        pb = self.pod.client.pb
        self.pod.client.call("StopContainer", pb.StopContainerRequest(container_id=self.id, timeout=timeout),
                             timeout=CALL_TIMEOUT + timeout)

    def __repr__(self):
        return "<Container %s/%s/%s attempt %d %s>" % (self.pod.namespace, self.pod.name, self.name, self.attempt,
                                                       self.id[:12])


class Pod:
    """A pod sandbox and its containers, made through CRI as the kubelet makes them; close() removes all."""

    def __init__(self, namespace, name, uid=None, containers=(), share_pid=False, labels=None, annotations=None,
                 client=None):
        self.client = client or runtime()
        self.namespace, self.name = namespace, name
        self.uid = uid or str(uuid.uuid4())
        self.share_pid = share_pid
        self.log_directory = os.path.join(POD_LOG_ROOT, "%s_%s_%s" % (namespace, name, self.uid))
        self.cgroup_parent = "/kubepods/besteffort/pod%s" % self.uid
        self.containers = {}      # name -> the latest attempt
        self.history = []         # every attempt made, oldest first
        self.sandbox_id = None
        self._lock = threading.RLock()
        self._background = []
        pb = self.client.pb
        pod_labels = dict(labels or {})
        pod_labels.update({TEST_LABEL: "1", SESSION_LABEL: SESSION})
        pod_labels.update({"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace,
                           "io.kubernetes.pod.uid": self.uid})
        pod_annotations = dict(annotations or {})
        pod_annotations.setdefault("kubernetes.io/config.source", "api")
        pod_annotations.setdefault("kubernetes.io/config.seen",
                                   time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()))
        self.namespace_options = pb.NamespaceOption(
            network=pb.NODE, pid=pb.POD if share_pid else pb.CONTAINER, ipc=pb.POD)
        self.sandbox_config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=self.uid, namespace=namespace, attempt=0),
            log_directory=self.log_directory, labels=pod_labels, annotations=pod_annotations,
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=self.namespace_options,
                    seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined))))
        os.makedirs(self.log_directory, mode=0o755, exist_ok=True)
        try:
            self.sandbox_id = self.client.call("RunPodSandbox", pb.RunPodSandboxRequest(
                config=self.sandbox_config)).pod_sandbox_id
            for spec in containers:
                self.start(spec)
        except BaseException:
            self.close()
            raise

    # ---- containers

    def container_config(self, spec, attempt):
        pb = self.client.pb
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=spec.name, attempt=attempt),
            image=pb.ImageSpec(image=spec.image), command=spec.command, args=spec.args,
            envs=[pb.KeyValue(key=key, value=value) for key, value in sorted(spec.env.items())],
            labels={"io.kubernetes.container.name": spec.name, "io.kubernetes.pod.name": self.name,
                    "io.kubernetes.pod.namespace": self.namespace, "io.kubernetes.pod.uid": self.uid},
            annotations={"io.kubernetes.container.hash": "%08x" % zlib.crc32(json.dumps([spec.name, spec.command, spec.args]).encode()),
                         "io.kubernetes.container.restartCount": str(attempt),
                         "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
                         "io.kubernetes.container.terminationMessagePolicy": "File",
                         "io.kubernetes.pod.terminationGracePeriod": "30"},
            log_path="%s/%d.log" % (spec.name, attempt),
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(cpu_period=100000, cpu_shares=2, oom_score_adj=1000),
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=self.namespace_options,
                    seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined))))

    def start(self, spec, attempt=0):
        """CreateContainer then StartContainer, as the kubelet does; the log directory of the container first."""
        pb = self.client.pb
        os.makedirs(os.path.join(self.log_directory, spec.name), mode=0o755, exist_ok=True)
        container_id = self.client.call("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=self.sandbox_id, config=self.container_config(spec, attempt),
            sandbox_config=self.sandbox_config)).container_id
        container = Container(self, spec, attempt, container_id)
        with self._lock:
            self.history.append(container)
            self.containers[spec.name] = container
        self.client.call("StartContainer", pb.StartContainerRequest(container_id=container_id))
        return container

    def restart(self, name):
        """The kubelet's restart: a new container, attempt + 1, in the same sandbox. The exited one stays
        (the kubelet keeps the last dead container of each name)."""
        with self._lock:
            old = self.containers[name]
        return self.start(old.spec, old.attempt + 1)

    def exec(self, name, command, timeout=30, container=None):
        """ExecSync in the container's latest attempt: the kubelet's exec probes and `kubectl exec` take this way
        (or Exec, which ends in the same runc exec)."""
        container = container or self.containers[name]
        pb = self.client.pb
        answer = self.client.call("ExecSync", pb.ExecSyncRequest(container_id=container.id, cmd=list(command),
                                                                timeout=timeout), timeout=timeout + CALL_TIMEOUT)
        return ExecResult(answer.exit_code, answer.stdout.decode(errors="replace"),
                          answer.stderr.decode(errors="replace"))

    def exec_in_background(self, name, command, timeout=0):
        """An ExecSync that goes on while the test looks (timeout 0: until it ends, as a hung exec probe):
        a thread; its outcome (ExecResult or the exception) in thread.outcome. close() ends it by stopping
        the sandbox."""
        container = self.containers[name]

        def run():
            try:
                thread.outcome = self.exec(name, command, timeout, container=container)
            except Exception as error:  # the sandbox was stopped under it
                thread.outcome = error
        thread = threading.Thread(target=run, name="exec-%s-%s" % (self.name, name), daemon=True)
        thread.outcome = None
        thread.start()
        self._background.append(thread)
        return thread

    def list_containers(self):
        pb = self.client.pb
        return list(self.client.call("ListContainers", pb.ListContainersRequest(
            filter=pb.ContainerFilter(pod_sandbox_id=self.sandbox_id))).containers)

    # ---- the sandbox

    def sandbox_status(self):
        """(PodSandboxStatus, info dict) of the sandbox (verbose: the pause pid among the info)."""
        pb = self.client.pb
        answer = self.client.call("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=self.sandbox_id,
                                                                                 verbose=True))
        return answer.status, json.loads(answer.info.get("info") or "{}")

    @property
    def pause_pid(self):
        """The sandbox's pause process on the host, as the runtime reports it."""
        return int(self.sandbox_status()[1].get("pid") or 0) or None

    def exec_keeping_zombies(self, name, zombies=3, timeout=30.0):
        """pid of the one process exec'd into container `name` that holds `zombies` zombies: a child of the pod's
        shim that is neither pause nor an init (runc exec's process is adopted by the subreaper shim)."""
        import psutil
        from helpers.zombies import wait_for, zombie_children
        inits = {container.init_pid for container in self.containers.values()} | {self.pause_pid}

        def found():
            pids = [child.pid for child in psutil.Process(self.shim_pid).children()
                    if child.pid not in inits and len(zombie_children(child.pid)) == zombies]
            return pids[0] if len(pids) == 1 else None
        wait_for(found, "the process exec'd into %s and its %d zombies" % (name, zombies), timeout=timeout)
        return found()

    @property
    def shim_pid(self):
        """The containerd-shim-runc-v2 serving this sandbox: the process started with -id <sandbox id> and
        this containerd's -address (found by command line, independently of what the scan does)."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    argv = handle.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if (os.path.basename(argv[0]).startswith("containerd-shim-runc-v2") and _flag(argv, "id") == self.sandbox_id
                    and _flag(argv, "address") == self.client.address):
                return int(entry)
        return None

    @property
    def sandbox_bundle(self):
        return bundle_dir(self.sandbox_id)

    def close(self):
        """Stop and remove the sandbox (and with it every container), then the log directory and the pod's
        cgroups, which the kubelet would remove."""
        if self.sandbox_id:
            try:
                self.client.remove_sandbox(self.sandbox_id)
            finally:
                self.sandbox_id = None
        for thread in self._background:
            thread.join(CALL_TIMEOUT)
        shutil.rmtree(self.log_directory, ignore_errors=True)
        remove_pod_cgroups(self.cgroup_parent)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<Pod %s/%s %s>" % (self.namespace, self.name, (self.sandbox_id or "closed")[:12])


def _flag(argv, name):
    for index, arg in enumerate(argv):
        if arg in ("-" + name, "--" + name) and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(("-%s=" % name, "--%s=" % name)):
            return arg.split("=", 1)[1]
    return None


def remove_pod_cgroups(cgroup_parent):
    """rmdir the pod's (then empty) cgroup in every hierarchy; leaves /kubepods itself."""
    relative = cgroup_parent.strip("/")
    try:
        hierarchies = os.listdir(CGROUP_ROOT)
    except OSError:
        return
    for hierarchy in hierarchies:
        path = os.path.join(CGROUP_ROOT, hierarchy, relative)
        if os.path.isdir(path) and not os.path.islink(os.path.join(CGROUP_ROOT, hierarchy)):
            try:
                os.rmdir(path)
            except OSError:
                pass
    # cgroup v2 (unified at the root)
    path = os.path.join(CGROUP_ROOT, relative)
    if os.path.isdir(path):
        try:
            os.rmdir(path)
        except OSError:
            pass


def cleanup(client=None, session=None):
    """Stop and remove every sandbox the tests made (of one session, or all), with their log directories
    and pod cgroups. Returns the number removed."""
    client = client or runtime()
    labels = {TEST_LABEL: "1"}
    if session:
        labels[SESSION_LABEL] = session
    removed = 0
    for sandbox in client.sandboxes(labels):
        client.remove_sandbox(sandbox.id)
        meta = sandbox.metadata
        shutil.rmtree(os.path.join(POD_LOG_ROOT, "%s_%s_%s" % (meta.namespace, meta.name, meta.uid)),
                      ignore_errors=True)
        remove_pod_cgroups("/kubepods/besteffort/pod%s" % meta.uid)
        removed += 1
    return removed
