"""Shared logic of the fake ``squeue``, ``getent`` and ``sacct`` executables here.

They replay fixture files so end-to-end tests need no Python mocking. Behaviour is read
from files in ``$FAKE_CLUSTER_DIR`` on every call, so a test can change it between two
scrapes of a running exporter:

* ``<cmd>.out``   standard output to print (``getent`` uses ``getent-passwd.out`` etc.)
* ``<cmd>.keyed`` (getent only) entries found by key but not enumerated, as SSSD does
  with ``enumerate = false``; with keys, getent prints the matching entries of
  ``.out`` and ``.keyed`` and exits 2 if any key was not found, like the real one
* ``<cmd>.echo``  (getent only) every numeric key is found: a made-up entry named
  ``u<key>`` (passwd) or ``g<key>`` (group) is printed for it
* ``<cmd>.forever`` print ``.out`` over and over until killed; the pid is appended to
  ``forever.pids``
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


def forever(out):
    """Print ``out`` until killed (or until the reader goes away)."""
    chunk = (out or b"\n") * max(1, 65536 // max(1, len(out)))
    with open(os.path.join(os.environ["FAKE_CLUSTER_DIR"], "forever.pids"), "a") as handle:
        handle.write(f"{os.getpid()}\n")
    try:
        while True:
            sys.stdout.buffer.write(chunk)
    except BrokenPipeError:
        return 1


def replay(name, select=None):
    """Answer as ``name``; ``select(lines, base) -> (lines, status)`` filters ``.out``
    (+ ``.keyed``)."""
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
    if read(base + ".forever") is not None:
        return forever(out)
    status = 0
    if select is not None:
        lines = (out + read(base + ".keyed", b"")).decode("utf-8", "replace").splitlines()
        chosen, status = select(lines, base)
        out = "".join(line + "\n" for line in chosen).encode()
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    err = read(base + ".err")
    if err:
        sys.stderr.buffer.write(err)
    rc = read(base + ".rc")
    return int(rc) if rc else status


def by_key(database, keys):
    """getent DATABASE KEY...: the entry of each key by name or id; status 2 if one misses."""

    def select(lines, base):
        index = {}
        for line in lines:
            fields = line.split(":")
            for field in fields[:1] + fields[2:3]:
                index.setdefault(field, line)
        echo = read(base + ".echo") is not None
        chosen, status = [], 0
        for key in keys:
            match = index.get(key)
            if match is None and echo and key.isdigit():
                if database == "passwd":
                    match = f"u{key}:x:{key}:{key}::/home/u{key}:/bin/sh"
                else:
                    match = f"g{key}:x:{key}:"
            if match is None:
                status = 2
            else:
                chosen.append(match)
        return chosen, status

    return select
