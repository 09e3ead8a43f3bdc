"""A real node_exporter (Debian's prometheus-node-exporter) serving one textfile directory on loopback."""

import shutil
import socket
import subprocess
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

BINARY = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NodeExporter:
    def __init__(self, textfile_dir):
        self.url = "http://127.0.0.1:%d/metrics" % free_port()
        self.process = subprocess.Popen(
            [BINARY, "--web.listen-address=" + self.url.split("/")[2], "--collector.disable-defaults",
             "--collector.textfile", "--collector.textfile.directory=%s" % textfile_dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.scrape_text()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("node_exporter did not start: %s" % self.process.stderr.read().decode())
                time.sleep(0.1)

    def scrape_text(self):
        with urllib.request.urlopen(self.url, timeout=5) as response:
            return response.read().decode()

    def scrape(self):
        """{family name: family} as Prometheus would see it."""
        return {family.name: family for family in text_string_to_metric_families(self.scrape_text())}

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stderr.close()
