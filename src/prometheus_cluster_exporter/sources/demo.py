"""A synthetic cluster for ``--demo``: Lustre rates, Slurm jobs, users and groups.

The three demo sources implement the same interfaces as the real ones and plug into
the same collector, so the demo shows exactly what the exporter does on a real
cluster, without Prometheus, Lustre or Slurm. Rates drift slowly with time so a
dashboard pointed at the demo shows living curves.
"""

from __future__ import annotations

import math
import random
import time
import zlib
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

from prometheus_cluster_exporter.records import (
    GroupTable,
    JobidRate,
    Parsed,
    PasswdEntry,
    SlurmJob,
    TargetRate,
    UserTable,
    fs_of_target,
)

_ACCOUNTS = ("physics", "chemistry", "biology", "climate", "astro")
_USERS = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "oscar",
)
_PROCS = ("rsync", "cp", "python3", "tar", "dd", "my.app", "kworker/86:1", "(ostnamed)")
_JOB_NAMES = ("relax", "md-run", "train", "postproc", "wrf", "sim 42", "assemble")
_PARTITIONS = ("batch", "gpu", "long")
_FS = "scratch"
_MDTS = (f"{_FS}-MDT0000", f"{_FS}-MDT0001")
_DIRECTORY_UIDS = (50001,)
#: The metadata operations of a jobid and their shares (the mix shifts with the jobid).
_MDOPS = (("open", 0.3), ("close", 0.3), ("getattr", 0.25), ("unlink", 0.1), ("mkdir", 0.05))


@dataclass(frozen=True)
class _Series:
    jobid: str
    read: float
    write: float
    metadata: float
    phase: float


class DemoCluster:
    """Deterministic synthetic data (``seed``); ``clock`` is injectable for tests."""

    def __init__(self, seed: int = 1, jobs: int = 40, clock: Callable[[], float] = time.time):
        rng = random.Random(seed)
        self.clock = clock
        self.users: UserTable = {0: PasswdEntry("root", 0)}
        self.groups: GroupTable = {0: "root"}
        for i, name in enumerate(_USERS):
            gid = 2000 + i % 4
            self.users[1001 + i] = PasswdEntry(name, gid)
            self.groups[gid] = f"hpc-{_ACCOUNTS[i % 4]}"
        self.jobs: List[SlurmJob] = []
        series: List[_Series] = []

        def add(jobid: str, scale: float) -> None:
            series.append(
                _Series(
                    jobid,
                    read=scale * rng.lognormvariate(17, 1.2),
                    write=scale * rng.lognormvariate(16.5, 1.3),
                    metadata=scale * rng.lognormvariate(4, 1.0),
                    phase=rng.uniform(0, 2 * math.pi),
                )
            )

        for n in range(jobs):
            jobid = str(4_200_000 + n * 7)
            user = rng.choice(_USERS)
            account = _ACCOUNTS[rng.randrange(len(_ACCOUNTS))]
            name, partition = _JOB_NAMES[n % len(_JOB_NAMES)], _PARTITIONS[n % len(_PARTITIONS)]
            self.jobs.append(SlurmJob(jobid, account, user, partition, name))
            add(jobid, 1.0)
        for n in range(3):  # jobs that just ended: IO still in the window, gone from squeue
            add(str(4_100_000 + n), 0.5)
        self.users[_DIRECTORY_UIDS[0]] = PasswdEntry("zoe", 2000)  # an LDAP-only user
        uids = sorted(self.users)
        for proc in _PROCS:
            add(f"{proc}.{rng.choice(uids)}", 0.2)
        add("sshd.4242", 0.01)  # a uid no directory knows
        add("nodot", 0.01)  # an id no grammar explains
        self._series = series

    def _level(self, s: _Series) -> float:
        # One slow cycle per ten minutes, never below 40 % of the base rate.
        return 1.0 + 0.6 * math.sin(self.clock() / 95.0 + s.phase)

    def rates(self, kind: str) -> List[JobidRate]:
        """Throughput per jobid; all of the demo's IO is on one filesystem."""
        return [JobidRate(s.jobid, getattr(s, kind) * self._level(s), _FS) for s in self._series]

    def operations(self, kind: str) -> List[JobidRate]:
        """Calls per second per jobid: the throughput over an IO size of 4 KiB to 1 MiB
        (a power of two), fixed per jobid."""
        return [
            JobidRate(rate.jobid, rate.value / (4096 << zlib.crc32(rate.jobid.encode()) % 9), _FS)
            for rate in self.rates(kind)
        ]

    def metadata(self) -> List[TargetRate]:
        """Operations per second per jobid, MDT and operation (each rounded, as the
        query by operation does; the collector sums them per MDT without the flag)."""
        out: List[TargetRate] = []
        for s in self._series:
            total = s.metadata * self._level(s)
            turn = zlib.crc32(s.jobid.encode()) % len(_MDOPS)
            for i, target in enumerate(_MDTS):
                on_mdt = total * (0.7 if i == 0 else 0.3)
                for n, (operation, _) in enumerate(_MDOPS):
                    rate = round(on_mdt * _MDOPS[(n + turn) % len(_MDOPS)][1])
                    if rate >= 1:
                        fs = fs_of_target(target)
                        out.append(TargetRate(s.jobid, float(rate), target, fs, operation))
        return out


class DemoLustreSource:
    def __init__(self, cluster: DemoCluster) -> None:
        self.cluster = cluster

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        return Parsed(self.cluster.rates("read"))

    def write_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        return Parsed(self.cluster.rates("write"))

    def read_operations(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[JobidRate]]:
        return Parsed(self.cluster.operations("read"))

    def write_operations(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[JobidRate]]:
        return Parsed(self.cluster.operations("write"))

    def metadata_rates(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[TargetRate]]:
        return Parsed(self.cluster.metadata())

    # The increases of --metrics.counters: the rates now, over the whole window.

    def read_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[List[JobidRate]]:
        return Parsed(_over(self.cluster.rates("read"), window_ms))

    def write_increase(self, deadline: float, at: float, window_ms: int) -> Parsed[List[JobidRate]]:
        return Parsed(_over(self.cluster.rates("write"), window_ms))

    def metadata_increase(
        self, deadline: float, at: float, window_ms: int
    ) -> Parsed[List[TargetRate]]:
        return Parsed(_over(self.cluster.metadata(), window_ms))


R = TypeVar("R", JobidRate, TargetRate)


def _over(rates: List[R], window_ms: int) -> List[R]:
    """Rates over a window of ``window_ms`` milliseconds: the increases."""
    return [rate._replace(value=rate.value * window_ms / 1000) for rate in rates]


class DemoJobSource:
    def __init__(self, cluster: DemoCluster) -> None:
        self.cluster = cluster

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        return Parsed(list(self.cluster.jobs))


class DemoIdentitySource:
    """Like SSSD with ``enumerate = false``: directory users resolve only by key."""

    def __init__(self, cluster: DemoCluster) -> None:
        self.cluster = cluster

    def users(self, deadline: float) -> Parsed[UserTable]:
        return Parsed({u: e for u, e in self.cluster.users.items() if u not in _DIRECTORY_UIDS})

    def groups(self, deadline: float) -> Parsed[GroupTable]:
        return Parsed(dict(self.cluster.groups))

    def lookup_users(self, uids: Sequence[int], deadline: float) -> Parsed[UserTable]:
        return Parsed({u: self.cluster.users[u] for u in uids if u in self.cluster.users})

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[GroupTable]:
        return Parsed({g: self.cluster.groups[g] for g in gids if g in self.cluster.groups})


def demo_sources(seed: int = 1) -> Tuple[DemoLustreSource, DemoJobSource, DemoIdentitySource]:
    cluster = DemoCluster(seed)
    return DemoLustreSource(cluster), DemoJobSource(cluster), DemoIdentitySource(cluster)


__all__ = ["DemoCluster", "demo_sources"]
