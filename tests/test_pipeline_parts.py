"""The small pure parts of a collect: the GC pause, table overlays, the top consumers,
the stage and family builders."""

from __future__ import annotations

import gc
import os
from typing import Iterator, List, Sequence

import pytest
from prometheus_client.parser import text_string_to_metric_families

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter import families as fam
from prometheus_cluster_exporter.attribution import Attribution, overlay
from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.gcpause import GcPause, gc_paused
from prometheus_cluster_exporter.records import Parsed, SlurmJob
from prometheus_cluster_exporter.report import Consumer, top_consumers
from prometheus_cluster_exporter.sources.demo import demo_sources
from prometheus_cluster_exporter.sources.slurm import CachedJobLookup


@pytest.fixture
def gc_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_gc_is_paused_inside_and_back_on_after(gc_enabled: None) -> None:
    pause = GcPause()
    with pause():
        assert not gc.isenabled()
        with pause():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_gc_is_back_on_after_a_pause_that_raised(gc_enabled: None) -> None:
    pause = GcPause()
    with pytest.raises(RuntimeError), pause():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_gc_disabled_by_someone_else_stays_disabled(gc_enabled: None) -> None:
    gc.disable()
    with GcPause()():
        pass
    assert not gc.isenabled()


def test_gc_is_back_on_after_a_scrape(gc_enabled: None) -> None:
    collector = ClusterCollector(*demo_sources(), timeout=5)
    assert collector.scrape()
    assert gc.isenabled()
    with gc_paused():
        pass
    assert gc.isenabled()


def test_overlay_base_wins_and_extra_fills_in() -> None:
    base = {"1": "squeue"}
    merged = overlay(base, {"1": "sacct", "2": "sacct"})
    assert merged["1"] == "squeue"
    assert merged["2"] == "sacct"
    assert merged.get("3") is None
    assert base == {"1": "squeue"}  # not copied into, not changed


OWNERS = [
    (attr.LOST, (attr.UNKNOWN_JOB,)),
    (attr.JOB, ("physics", "alice")),
    (attr.PROC, ("cp", "hpc", "bob")),
    (attr.JOB, ("chem", "bob")),
    (attr.JOB, ("bio", "carol")),
]


def answer(sums: dict) -> Attribution:  # type: ignore[type-arg]
    """An attribution over OWNERS: extra labels -> {owner number: value}."""
    result = Attribution([kind for kind, _ in OWNERS], [key for _, key in OWNERS])
    result.sums = sums
    return result


def test_top_consumers_keep_read_and_write_apart() -> None:
    read = answer({(): {1: 10.0, 2: 1.0, 0: 99.0}})
    write = answer({(): {1: 3.0, 2: 50.0}})
    assert top_consumers(read, write) == [
        Consumer("process", "cp (bob, hpc)", 1.0, 50.0),
        Consumer("job", "physics / alice", 10.0, 3.0),
    ]


def test_top_consumers_sum_over_labels_after_the_owner_and_count() -> None:
    read = answer({("scratch",): {1: 5.0}, ("home",): {1: 6.0, 3: 10.0, 4: 1.0}})
    assert read.jobs == {
        ("physics", "alice", "scratch"): 5.0,
        ("physics", "alice", "home"): 6.0,
        ("chem", "bob", "home"): 10.0,
        ("bio", "carol", "home"): 1.0,
    }
    assert top_consumers(read, None, count=2) == [
        Consumer("job", "physics / alice", 11.0, 0.0),
        Consumer("job", "chem / bob", 10.0, 0.0),
    ]
    assert top_consumers(None, None) == []


def test_query_families_leave_out_what_is_unknown() -> None:
    jobs = {("physics", "alice", "scratch"): 1.0}
    procs = {("cp", "hpc", "bob", "scratch"): 2.0}
    lost = {("unknown_job", "scratch"): 3.0}
    all_three = fam.query_families(
        fam.READ, jobs, procs, lost, fs_label=True, jobs_known=True, identities_known=True
    )
    assert [f.spec.name for f in all_three] == [
        "cluster_job_read_throughput_bytes",
        "cluster_proc_read_throughput_bytes",
        "cluster_unattributed_read_throughput_bytes",
    ]
    assert all(f.spec.labels[-1] == "fs" for f in all_three)
    only_lost = fam.query_families(
        fam.WRITE, {}, {}, lost, fs_label=False, jobs_known=False, identities_known=False
    )
    assert [f.spec.name for f in only_lost] == ["cluster_unattributed_write_throughput_bytes"]
    assert only_lost[0].spec.labels == ("reason",)


def test_extra_labels_per_query() -> None:
    from prometheus_cluster_exporter.records import JobidRate, TargetRate

    target = TargetRate("1", 2.0, "scratch-MDT0000", "scratch")
    assert fam.extra_labels(fam.METADATA, False)(target) == ("scratch-MDT0000",)  # type: ignore[misc]
    assert fam.extra_labels(fam.METADATA, True)(target) == ("scratch-MDT0000", "scratch")  # type: ignore[misc]
    assert fam.extra_labels(fam.READ, False) is None
    assert fam.extra_labels(fam.READ, True)(JobidRate("1", 2.0, "home")) == ("home",)  # type: ignore[misc]


class _Sacct:
    """Knows the demo's jobs that just ended (4100000 to 4100002)."""

    def __init__(self) -> None:
        self.asked: List[List[str]] = []

    def lookup_jobs(self, jobids: Sequence[str], deadline: float) -> Parsed[List[SlurmJob]]:
        self.asked.append(list(jobids))
        return Parsed([SlurmJob(j, "physics", "alice") for j in jobids if j.startswith("41")])


def _stage_names(collector: ClusterCollector) -> set[str]:
    text = render(collector.scrape()).decode()
    family = {f.name: f for f in text_string_to_metric_families(text)}
    return {s.labels["name"] for s in family["cluster_exporter_stage_execution_seconds"].samples}


def test_the_finished_jobs_stage_shows_only_when_sacct_ran() -> None:
    """The first scrape asks sacct for the demo's ended jobs; the second answers them all
    from the cache, runs no sacct, and so reports no retrieve_finished_jobs stage."""
    sacct = _Sacct()
    collector = ClusterCollector(
        *demo_sources(), timeout=5, job_lookup=CachedJobLookup(sacct), job_grace=0
    )
    assert "retrieve_finished_jobs" in _stage_names(collector)
    assert sorted(sacct.asked[0]) == ["4100000", "4100001", "4100002"]
    second = _stage_names(collector)
    assert len(sacct.asked) == 1  # all from the cache
    assert "retrieve_finished_jobs" not in second
    assert "retrieve_running_jobs" in second  # the original's stages are always there


def test_malloc_arenas_are_limited_on_glibc_unless_the_operator_chose() -> None:
    import platform
    import subprocess
    import sys

    code = "from prometheus_cluster_exporter.memory import limit_malloc_arenas as f; print(f())"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    glibc = platform.libc_ver()[0] == "glibc"
    assert run.stdout.strip() == str(glibc)
    chosen = subprocess.run([sys.executable, "-c", code], check=True, env={**env, "MALLOC_ARENA_MAX": "4"},
                            capture_output=True, text=True)  # fmt: skip
    assert chosen.stdout.strip() == "False"
