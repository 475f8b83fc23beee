"""Shared logic of the fake ``squeue``, ``getent`` and ``sacct`` executables here.

They replay fixture files so end-to-end tests need no Python mocking. Behaviour is read
from files in ``$FAKE_CLUSTER_DIR`` on every call, so a test can change it between two
scrapes of a running exporter:

* ``<cmd>.out``   standard output to print (``getent`` uses ``getent-passwd.out`` etc.)
* ``<cmd>.keyed`` (getent only) entries found by key but not enumerated, as SSSD does
  with ``enumerate = false``; with keys, getent prints the matching entries of
  ``.out`` and ``.keyed`` and exits 2 if any key was not found, like the real one
* ``<cmd>.sleep`` seconds to wait before answering (in a grandchild ``sleep``, so that
  killing only the direct child would leave a process behind)
* ``<cmd>.rc``    exit status
* ``<cmd>.err``   standard error to print
* ``<cmd>.calls`` every call appends its argv and LC_ALL here (one file per command)
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


def replay(name, select=None):
    """Answer as ``name``; ``select(lines) -> (lines, status)`` filters ``.out`` (+ ``.keyed``)."""
    state = os.environ.get("FAKE_CLUSTER_DIR")
    if not state:
        sys.stderr.write(f"{name}: FAKE_CLUSTER_DIR is not set\n")
        return 97
    base = os.path.join(state, name)
    with open(os.path.join(state, name.split("-")[0] + ".calls"), "a") as calls:
        calls.write(json.dumps({"argv": sys.argv[1:], "LC_ALL": os.environ.get("LC_ALL")}) + "\n")
    sleep = read(base + ".sleep")
    if sleep:
        child = subprocess.Popen(["sleep", sleep.decode().strip()])
        with open(base + ".pids", "a") as handle:
            handle.write(f"{os.getpid()} {child.pid}\n")
        child.wait()
    out = read(base + ".out", b"")
    status = 0
    if select is not None:
        lines = (out + read(base + ".keyed", b"")).decode("utf-8", "replace").splitlines()
        chosen, status = select(lines)
        out = "".join(line + "\n" for line in chosen).encode()
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    err = read(base + ".err")
    if err:
        sys.stderr.buffer.write(err)
    rc = read(base + ".rc")
    return int(rc) if rc else status


def by_key(keys):
    """getent DATABASE KEY...: the entry of each key by name or id; status 2 if one misses."""

    def select(lines):
        chosen, status = [], 0
        for key in keys:
            match = next(
                (ln for ln in lines if key in ln.split(":")[:1] + ln.split(":")[2:3]), None
            )
            if match is None:
                status = 2
            else:
                chosen.append(match)
        return chosen, status

    return select
