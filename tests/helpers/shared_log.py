"""A list that the reaper's tracer process appends to and the test reads: the tracer is a forked child of the
test's process, so what a monkeypatched function records there in a plain list never reaches the test."""

import json
import os
import tempfile


class SharedLog:
    """Values (JSON) appended as lines of one file, O_APPEND: whole lines from any process of the test."""

    def __init__(self, directory=None):
        handle, self.path = tempfile.mkstemp(prefix="zc-shared-", suffix=".jsonl", dir=directory)
        os.close(handle)

    def append(self, value):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (json.dumps(value) + "\n").encode())
        finally:
            os.close(fd)

    def items(self):
        with open(self.path) as handle:
            return [json.loads(line) for line in handle]

    def __len__(self):
        return len(self.items())

    def __bool__(self):
        return bool(self.items())

    def __iter__(self):
        return iter(self.items())

    def __eq__(self, other):
        return self.items() == list(other)

    def __repr__(self):
        return "SharedLog(%r)" % self.items()

    def remove(self):
        os.unlink(self.path)
