"""The synthetic Lustre exporter's counters (``simulate``): constant rates, continued
across a spec change at the new rates, and set back to 0 for a job whose ``reset`` number
changed, as Lustre does when ``job_cleanup_interval`` drops a jobid."""

from __future__ import annotations

from typing import Dict, List

from prometheus_cluster_exporter.simulate import Simulation
from tests.helpers import Scrape


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def spec(*jobs: Dict[str, object]) -> Dict[str, object]:
    return {"schema": "hp", "filesystems": {"scratch": {"osts": 2, "mdts": 1}}, "jobs": list(jobs)}


def read_bytes(sim: Simulation) -> Dict[str, float]:
    """Bytes read per jobid, summed over the OSTs."""
    out: Dict[str, float] = {}
    for labels, value in Scrape(sim.render()).series("lustre_job_read_bytes_total").items():
        jobid = dict(labels)["jobid"]
        out[jobid] = out.get(jobid, 0.0) + value
    return out


def test_counters_grow_at_their_rates_and_continue_at_new_ones() -> None:
    clock = Clock()
    sim = Simulation(spec({"jobid": "1", "read": 100}, {"jobid": "2", "read": 10}), clock)
    clock.now += 10
    assert read_bytes(sim) == {"1": 1000.0, "2": 100.0}
    sim.update(spec({"jobid": "1", "read": 50}))  # job 2 stops: kept, no longer growing
    clock.now += 10
    assert read_bytes(sim) == {"1": 1500.0, "2": 100.0}


def test_a_changed_reset_number_sets_that_jobs_counters_back_to_zero() -> None:
    clock = Clock()
    jobs: List[Dict[str, object]] = [{"jobid": "1", "read": 100}, {"jobid": "2", "read": 10}]
    sim = Simulation(spec(*jobs), clock)
    clock.now += 10
    sim.update(spec({"jobid": "1", "read": 100, "reset": 1}, jobs[1]))
    clock.now += 5
    assert read_bytes(sim) == {"1": 500.0, "2": 150.0}
    # The same number again changes nothing; a reset job keeps its new number.
    sim.update(spec({"jobid": "1", "read": 100, "reset": 1}, jobs[1]))
    clock.now += 5
    assert read_bytes(sim) == {"1": 1000.0, "2": 200.0}
    # A new job starts with its number, and resets when it changes.
    sim.update(spec({"jobid": "1", "read": 100, "reset": 1}, {"jobid": "3", "read": 1, "reset": 7}))
    clock.now += 5
    sim.update(spec({"jobid": "1", "read": 100, "reset": 1}, {"jobid": "3", "read": 1, "reset": 8}))
    clock.now += 2
    assert read_bytes(sim) == {"1": 1700.0, "2": 200.0, "3": 2.0}
