"""The usage report's queries and model (``prometheus-cluster-exporter report``).

Pure: no I/O, no clock, no logging. Imports ``metrics`` and ``usageperiod``.

Nine instant queries, evaluated at the period's end (``usageperiod.Period``), ask what the
counters of ``--metrics.counters`` grew by over the period, in whole seconds, with the
``--selector`` matchers in every selector::

    sum by(account,user)(increase(cluster_job_read_bytes_total{job="cluster"}[2678400s]))
    sum by(user_name)(increase(cluster_proc_read_bytes_total{job="cluster"}[2678400s]))
    sum by(reason)(increase(cluster_unattributed_read_bytes_total{job="cluster"}[2678400s]))

and the same for the bytes written and the metadata operations. ``build_report`` turns the
answers into accounts (each with its users), IO outside Slurm jobs per user, unattributed
IO per reason and the total, biggest first (read + written bytes), in exact integers::

    Report(accounts=(AccountRow(account='physics', usage=Usage(read_bytes=140200000000000,
    write_bytes=3100000000, metadata_ops=1200000), share=96.4, users=(Row(name='alice',
    usage=Usage(...)), ...)), ...), outside_jobs=(Row(name='root', ...),), ...)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, NamedTuple, Sequence, Tuple

from prometheus_cluster_exporter import metrics
from prometheus_cluster_exporter.metrics import MetricSpec
from prometheus_cluster_exporter.usageperiod import Period


class AnswerError(ValueError):
    """An answer that is not a successful instant vector."""


class SelectorError(ValueError):
    """A --selector that cannot go inside braces."""


def check_selector(text: str) -> str:
    """Extra label matchers for every series (``job="cluster",cluster="a"``): checked
    lightly; Prometheus says what else is wrong with them."""
    text = text.strip().strip(",").strip()
    if any(char in text for char in "{}\n\r"):
        raise SelectorError(
            f"--selector: give label matchers without braces or line breaks, e.g. "
            f'job="cluster",cluster="a"; got {text!r}'
        )
    if text and "=" not in text and "~" not in text:
        raise SelectorError(f'--selector: expected label matchers like job="cluster", got {text!r}')
    return text


# -- the queries -------------------------------------------------------------------------

JOB, OUTSIDE, UNATTRIBUTED = "job", "outside_jobs", "unattributed"
KINDS = (JOB, OUTSIDE, UNATTRIBUTED)
FIELDS = ("read_bytes", "write_bytes", "metadata_ops")
#: Each kind's labels in the report and its three counters (FIELDS' order).
SERIES: Mapping[str, Tuple[Tuple[str, ...], Tuple[MetricSpec, MetricSpec, MetricSpec]]] = {
    JOB: (
        ("account", "user"),
        (metrics.JOB_READ_TOTAL, metrics.JOB_WRITE_TOTAL, metrics.JOB_METADATA_TOTAL),
    ),
    OUTSIDE: (
        ("user_name",),
        (metrics.PROC_READ_TOTAL, metrics.PROC_WRITE_TOTAL, metrics.PROC_METADATA_TOTAL),
    ),
    UNATTRIBUTED: (
        ("reason",),
        (
            metrics.UNATTRIBUTED_READ_TOTAL,
            metrics.UNATTRIBUTED_WRITE_TOTAL,
            metrics.UNATTRIBUTED_METADATA_TOTAL,
        ),
    ),
}


class Query(NamedTuple):
    kind: str
    field: str
    labels: Tuple[str, ...]
    promql: str


def queries(seconds: int, selector: str = "") -> Tuple[Query, ...]:
    """The nine queries: every kind's read and written bytes and metadata operations."""
    matchers = f"{{{selector}}}" if selector else ""
    found: List[Query] = []
    for kind in KINDS:
        labels, specs = SERIES[kind]
        for field, spec in zip(FIELDS, specs):
            promql = f"sum by({','.join(labels)})(increase({spec.name}{matchers}[{seconds}s]))"
            found.append(Query(kind, field, labels, promql))
    return tuple(found)


class Answer(NamedTuple):
    """Label values -> the (whole, above 0) value; ``series``: samples in the answer."""

    values: Dict[Tuple[str, ...], int]
    series: int


def parse_answer(body: bytes, labels: Sequence[str]) -> Answer:
    """An instant vector's values by ``labels``; NaN, infinite, negative and zero values
    are left out (but counted in ``series``)."""
    try:
        document = json.loads(body)
        if document.get("status") != "success":
            raise AnswerError(f"status {str(document.get('status'))[:40]!r}, not 'success'")
        data = document["data"]
        if data.get("resultType") != "vector":
            raise AnswerError(f"a {str(data.get('resultType'))[:40]!r}, not a vector")
        values: Dict[Tuple[str, ...], int] = {}
        for sample in data["result"]:
            metric = sample.get("metric") or {}
            key = tuple(str(metric.get(label, "")) for label in labels)
            number = float(sample["value"][1])
            if math.isfinite(number) and number > 0 and round(number) > 0:
                values[key] = values.get(key, 0) + round(number)
        return Answer(values, len(data["result"]))
    except AnswerError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise AnswerError(f"not a Prometheus query answer ({type(exc).__name__})") from None


# -- the report --------------------------------------------------------------------------


class Usage(NamedTuple):
    read_bytes: int = 0
    write_bytes: int = 0
    metadata_ops: int = 0

    @property
    def bytes(self) -> int:
        return self.read_bytes + self.write_bytes

    def plus(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self, other)))


class Row(NamedTuple):
    """A user of an account, a user outside jobs or a reason."""

    name: str
    usage: Usage


class AccountRow(NamedTuple):
    account: str
    usage: Usage
    #: Percent of all bytes read and written in the period (0 when there were none).
    share: float
    users: Tuple[Row, ...]


@dataclass(frozen=True)
class Report:
    period: Period
    server: str
    selector: str
    accounts: Tuple[AccountRow, ...]
    outside_jobs: Tuple[Row, ...]
    unattributed: Tuple[Row, ...]
    total: Usage
    #: Percent of all bytes the unattributed rows hold.
    unattributed_share: float
    #: Samples in all answers, zero values included: 0 means the counters are not there.
    series: int

    @property
    def outside_total(self) -> Usage:
        return _sum(row.usage for row in self.outside_jobs)

    @property
    def unattributed_total(self) -> Usage:
        return _sum(row.usage for row in self.unattributed)


def _sum(usages: Iterable[Usage]) -> Usage:
    total = Usage()
    for usage in usages:
        total = total.plus(usage)
    return total


def _biggest_first(usage: Usage, name: str) -> Tuple[int, str]:
    return (-usage.bytes, name)


def _rows(by_labels: Mapping[Tuple[str, ...], List[int]]) -> Tuple[Row, ...]:
    rows = [Row(labels[-1], Usage(*values)) for labels, values in by_labels.items()]
    return tuple(sorted(rows, key=lambda row: _biggest_first(row.usage, row.name)))


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def build_report(
    period: Period, server: str, selector: str, answers: Mapping[Tuple[str, str], Answer]
) -> Report:
    """The report of the answers, keyed by (kind, field); zero rows are left out."""
    merged: Dict[str, Dict[Tuple[str, ...], List[int]]] = {kind: {} for kind in KINDS}
    for (kind, field), answer in answers.items():
        for labels, value in answer.values.items():
            merged[kind].setdefault(labels, [0, 0, 0])[FIELDS.index(field)] += value
    per_account: Dict[str, Dict[Tuple[str, ...], List[int]]] = {}
    for (account, user), values in merged[JOB].items():
        per_account.setdefault(account, {})[(user,)] = values
    outside, unattributed = _rows(merged[OUTSIDE]), _rows(merged[UNATTRIBUTED])
    accounts = [(name, _rows(users)) for name, users in per_account.items()]
    total = _sum(row.usage for _, rows in accounts for row in rows)
    total = total.plus(_sum(row.usage for row in outside + unattributed))
    account_rows = sorted(
        (
            AccountRow(name, usage, _percent(usage.bytes, total.bytes), rows)
            for name, rows in accounts
            for usage in [_sum(row.usage for row in rows)]
        ),
        key=lambda row: _biggest_first(row.usage, row.account),
    )
    lost = _sum(row.usage for row in unattributed)
    return Report(
        period=period,
        server=server,
        selector=selector,
        accounts=tuple(account_rows),
        outside_jobs=outside,
        unattributed=unattributed,
        total=total,
        unattributed_share=_percent(lost.bytes, total.bytes),
        series=sum(answer.series for answer in answers.values()),
    )
