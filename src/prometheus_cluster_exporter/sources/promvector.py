"""Instant-vector answers of the query API -> typed records, within the scrape deadline.

Two paths: well-formed answers are decoded straight into small typed objects (msgspec,
``fast_*``); anything else goes through the tolerant parsers, which skip malformed
samples one by one and say why at DEBUG. Both stop with a SourceError once the scrape
deadline has passed: decoding a huge answer counts against the deadline like fetching it.

Sample answer (``sum by(jobid)(...)``)::

    {"status":"success","data":{"resultType":"vector","result":[
      {"metric":{"jobid":"4242"},"value":[1733090000.123,"1048576"]}]}}
"""

from __future__ import annotations

import logging
import math
import re
from array import array
from itertools import compress
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, cast

from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.jsonutil import DecodeError, VectorDecoder, loads
from prometheus_cluster_exporter.pacing import paced
from prometheus_cluster_exporter.records import (
    JobidRate,
    Parsed,
    RateColumn,
    Rates,
    TargetRate,
    checked,
    fs_of_target,
)
from prometheus_cluster_exporter.sources.promscan import Columns

log = logging.getLogger(__name__)

R = TypeVar("R")
K = TypeVar("K")


def decoding(what: str) -> str:
    """How a deadline passed while decoding is reported."""
    return f"{what}: decoding the answer"


def _sample_value(sample: Any) -> float:
    value = sample["value"]
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], str):
        raise ValueError("value is not [time, string]")
    number = float(value[1])
    if not math.isfinite(number):
        raise ValueError(f"value is {value[1]}")
    return number


def vector_result(payload: Any, what: str) -> List[Any]:
    """The ``data.result`` list of a successful instant-vector answer, or SourceError."""
    if not isinstance(payload, dict):
        raise SourceError(f"{what}: answer is not a JSON object")
    status = payload.get("status")
    if status != "success":
        error = payload.get("error") or payload.get("errorType") or "no error text"
        raise SourceError(f"{what}: query status {status!r}: {str(error)[:300]}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise SourceError(f"{what}: answer has no data object")
    if data.get("resultType") != "vector":
        raise SourceError(f"{what}: expected a vector result, got {data.get('resultType')!r}")
    result = data.get("result")
    if not isinstance(result, list):
        raise SourceError(f"{what}: data.result is not a list")
    return result


def _tolerant(
    payload: Any, what: str, deadline: float, record: Callable[[Any, float], R]
) -> Parsed[List[R]]:
    """``record(labels, value)`` for every sample; a sample it (or the value) rejects is
    skipped, counted and logged at DEBUG."""
    rates: List[R] = []
    skipped = 0
    for chunk in paced(vector_result(payload, what), deadline, decoding(what)):
        for sample in chunk:
            try:
                rates.append(record(sample["metric"], _sample_value(sample)))
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                skipped += 1
                log.debug("%s: skipping sample %.200r: %s", what, sample, exc)
    return checked(rates, skipped, what)


def _text(labels: Any, name: str) -> str:
    value = labels[name]
    if not isinstance(value, str):
        raise TypeError(f"label {name} is not a string")
    return value


def parse_jobid_vector(
    payload: Any,
    jobid_label: str,
    what: str,
    fs_label: Optional[str] = None,
    deadline: float = math.inf,
) -> Parsed[List[JobidRate]]:
    """Turn a ``sum by(jobid)`` answer into JobidRate records; skip malformed samples.

    With ``fs_label`` the answer is ``sum by(jobid, fs)`` and every sample needs both.
    """

    def record(labels: Any, value: float) -> JobidRate:
        fs = _text(labels, fs_label) if fs_label else ""
        return JobidRate(_text(labels, jobid_label), value, fs)

    return _tolerant(payload, what, deadline, record)


def parse_target_vector(
    payload: Any,
    jobid_label: str,
    target_label: str,
    target_regex: str,
    what: str,
    deadline: float = math.inf,
    operation_label: Optional[str] = None,
) -> Parsed[List[TargetRate]]:
    """Turn a ``sum by(target, jobid)`` answer into TargetRate records (MDT targets only).

    With ``operation_label`` the answer is ``sum by(target, jobid, operation)`` and every
    sample needs all three.
    """
    fs_of = _TargetFilter(target_regex)

    def record(labels: Any, value: float) -> TargetRate:
        jobid, target = _text(labels, jobid_label), _text(labels, target_label)
        operation = _text(labels, operation_label) if operation_label else ""
        fs = fs_of[target]
        if fs is None:
            raise ValueError(f"target {target!r} is not a metadata target")
        return TargetRate(jobid, value, target, fs, operation)

    return _tolerant(payload, what, deadline, record)


def decode_json(body: bytes, what: str) -> Any:
    try:
        return loads(body)
    except DecodeError as exc:
        raise SourceError(f"{what}: answer is not valid JSON ({len(body)} bytes): {exc}") from None


_new = tuple.__new__


class _TargetFilter(Dict[str, Optional[str]]):
    """target -> its filesystem name, or None for a target that is not a metadata target.

    An answer names few distinct targets (the MDTs) in many rows: each is matched once.
    """

    def __init__(self, target_regex: str) -> None:
        super().__init__()
        self._keep = re.compile(target_regex).fullmatch

    def __missing__(self, target: str) -> Optional[str]:
        fs = self[target] = fs_of_target(target) if self._keep(target) else None
        return fs


def fast_jobid_rates(
    samples: List[Any],
    decoder: VectorDecoder,
    with_fs: bool,
    what: str,
    deadline: float = math.inf,
) -> Parsed[List[JobidRate]]:
    """JobidRate records from typed samples (labels: jobid, or jobid and fs)."""
    rates: List[JobidRate] = []
    skipped = 0
    labels_of = decoder.labels_of
    for chunk in paced(samples, deadline, decoding(what)):
        for sample in chunk:
            try:
                value = float(sample.value[1])
            except ValueError:
                value = math.nan
            if value - value != 0:  # NaN, infinities, garbage
                skipped += 1
                log.debug("%s: skipping sample with value %r", what, sample.value[1])
                continue
            # tuple.__new__ builds the record without NamedTuple's Python-level __new__.
            if with_fs:
                jobid, fs = labels_of(sample.metric)
                rates.append(_new(JobidRate, (jobid, value, fs)))
            else:
                rates.append(_new(JobidRate, (labels_of(sample.metric), value, "")))
    return checked(rates, skipped, what)


def fast_target_rates(
    samples: List[Any],
    decoder: VectorDecoder,
    target_regex: str,
    what: str,
    deadline: float = math.inf,
    with_operation: bool = False,
) -> Parsed[List[TargetRate]]:
    """TargetRate records from typed samples (labels: jobid and target, and the
    operation ``with_operation``)."""
    fs_of = _TargetFilter(target_regex)
    rates: List[TargetRate] = []
    skipped = 0
    labels_of = decoder.labels_of
    operation = ""
    for chunk in paced(samples, deadline, decoding(what)):
        for sample in chunk:
            if with_operation:
                jobid, target, operation = labels_of(sample.metric)
            else:
                jobid, target = labels_of(sample.metric)
            fs = fs_of[target]
            try:
                value = float(sample.value[1])
            except ValueError:
                value = math.nan
            if fs is None or value - value != 0:
                skipped += 1
                log.debug("%s: skipping sample %r %r", what, target, sample.value[1])
                continue
            rates.append(_new(TargetRate, (jobid, value, target, fs, operation)))
    return checked(rates, skipped, what)


def _finite(columns: Columns, what: str) -> Tuple[Sequence[str], List[Sequence[str]], Any, int]:
    """(ids, other labels, values) of the rows whose value is a finite number, and how
    many were not."""
    total = sum(columns.values)
    if total - total == 0:
        return columns.ids, list(columns.labels), columns.values, 0
    keep = [value - value == 0 for value in columns.values]
    for jobid, value, ok in zip(columns.ids, columns.values, keep):
        if not ok:
            log.debug("%s: skipping jobid %.80r with value %r", what, jobid, value)
    labels: List[Sequence[str]] = [list(compress(label, keep)) for label in columns.labels]
    values = array("d", compress(columns.values, keep))
    return list(compress(columns.ids, keep)), labels, values, keep.count(False)


def scanned_jobid_rates(columns: Columns, with_fs: bool, what: str) -> Parsed[Rates]:
    """Rates from a scanned ``sum by(jobid)`` answer (labels: jobid, or jobid and fs)."""
    ids, labels, values, skipped = _finite(columns, what)
    if not with_fs:
        return checked(Rates([RateColumn((), ids, values)] if len(ids) else []), skipped, what)
    groups = grouped(ids, labels[0], values)
    return checked(Rates(RateColumn((fs,), i, v) for fs, (i, v) in groups.items()), skipped, what)


def scanned_target_rates(
    columns: Columns, target_regex: str, with_fs: bool, what: str, with_operation: bool = False
) -> Parsed[Rates]:
    """Rates from a scanned ``sum by(target, jobid)`` answer (MDT targets only; labels:
    jobid and target, and the operation ``with_operation``)."""
    ids, labels, values, skipped = _finite(columns, what)
    fs_of = _TargetFilter(target_regex)
    rates = Rates()
    groups: Dict[Tuple[str, ...], Tuple[Sequence[str], Sequence[float]]]
    if with_operation:  # a (target, operation) pair per row, only with the flag
        groups = grouped(ids, list(zip(labels[0], labels[1])), values)
    else:
        groups = {(target,): g for target, g in grouped(ids, labels[0], values).items()}
    for key, (i, v) in groups.items():
        target = key[0]
        fs = fs_of[target]
        if fs is None:
            skipped += len(i)
            log.debug("%s: skipping %d samples of target %.80r", what, len(i), target)
            continue
        rates.append(RateColumn((*key, fs) if with_fs else key, i, v))
    return checked(rates, skipped, what)


def grouped(
    ids: Sequence[str], keys: Sequence[K], values: Sequence[float]
) -> Dict[K, Tuple[Sequence[str], Sequence[float]]]:
    """ids and values split by ``keys`` (few distinct: targets, filesystems)."""
    if not keys:
        return {}
    if keys.count(keys[0]) == len(keys):
        return {keys[0]: (ids, values)}
    out: Dict[K, Tuple[List[str], List[float]]] = {}
    for key, jobid, value in zip(keys, ids, values):
        group = out.get(key)
        if group is None:
            group = out[key] = ([], [])
        group[0].append(jobid)
        group[1].append(value)
    return cast(Dict[K, Tuple[Sequence[str], Sequence[float]]], out)
