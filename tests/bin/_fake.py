"""Shared logic of the fake ``squeue`` and ``getent`` executables in this folder.

They replay fixture files so end-to-end tests need no Python mocking. Behaviour is read
from files in ``$FAKE_CLUSTER_DIR`` on every call, so a test can change it between two
scrapes of a running exporter:

* ``<cmd>.out``   standard output to print (``getent`` uses ``getent-passwd.out`` etc.)
* ``<cmd>.sleep`` seconds to wait before answering (in a grandchild ``sleep``, so that
  killing only the direct child would leave a process behind)
* ``<cmd>.rc``    exit status
* ``<cmd>.calls`` every call appends its argv and LC_ALL here
* ``<cmd>.pids``  pids of the process and of the sleeping grandchild
"""

import json
import os
import subprocess
import sys


def read(path, default=None):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return default


def replay(name):
    state = os.environ.get("FAKE_CLUSTER_DIR")
    if not state:
        sys.stderr.write(f"{name}: FAKE_CLUSTER_DIR is not set\n")
        return 97
    base = os.path.join(state, name)
    with open(os.path.join(state, name.split("-")[0] + ".calls"), "a") as calls:
        calls.write(json.dumps({"argv": sys.argv[1:], "LC_ALL": os.environ.get("LC_ALL")}) + "\n")
    sleep = read(base + ".sleep")
    pids = [os.getpid()]
    if sleep:
        child = subprocess.Popen(["sleep", sleep.decode().strip()])
        pids.append(child.pid)
        with open(base + ".pids", "a") as handle:
            handle.write(" ".join(map(str, pids)) + "\n")
        child.wait()
    out = read(base + ".out", b"")
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    err = read(base + ".err")
    if err:
        sys.stderr.buffer.write(err)
    rc = read(base + ".rc")
    return int(rc) if rc else 0
