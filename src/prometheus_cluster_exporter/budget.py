"""The cardinality budget (``--metrics.max-series``): per family, the biggest owners
kept, the others folded into one ``__other__`` owner of their kind.

Pure functions only (no I/O, no logging, no globals); the cost is linear in the rows
but for one sort of the owners, done in C. Folding moves values and never drops one:
every family's sum, and so ``job + process + unattributed == the query's total``, hold
as before (up to float rounding).

Owners are ranked by their value summed over all their rows (over the labels after the
owner's: the MDT ``target``, ``fs``), biggest first; equal values by the owners' labels,
so the kept set does not flap between scrapes. A kept owner keeps all its rows; the rows
of the folded owners are added up into one ``__other__`` row per tuple of labels after
the owner's. Job and process owners are folded, each kind on its own; unattributed
owners (a handful of reasons) never are. Imports ``attribution`` only.

Sample (a read answer, budget 1; three job owners, two folded)::

    cluster_job_read_throughput_bytes{account="physics",user="alice"} 104857600.0
    cluster_job_read_throughput_bytes{account="__other__",user="__other__"} 5120.0
"""

from __future__ import annotations

from itertools import compress
from math import inf, isnan
from operator import itemgetter, neg
from typing import Dict, List, Mapping, NamedTuple, Set

from prometheus_cluster_exporter.attribution import JOB, PROC, Attribution, Key

OTHER = "__other__"
#: The labels of the owner the folded owners of a kind are summed under.
OTHER_LABELS: Mapping[int, Key] = {JOB: (OTHER, OTHER), PROC: (OTHER, OTHER, OTHER)}
#: The kinds of owner that are folded.
FOLDED_KINDS = (JOB, PROC)


class Folded(NamedTuple):
    """An answer's attribution within the budget, and how many owners of each kind
    (JOB, PROC) were folded into ``__other__``."""

    result: Attribution
    folded: Dict[int, int]


def fold(result: Attribution, budget: int) -> Folded:
    """``result`` with at most ``budget`` owners of each kind besides ``__other__``.

    Where no kind has more than ``budget`` owners (or ``budget`` is 0, no budget),
    ``result`` itself. Otherwise a new ``Attribution`` with a table of its own: the
    owners it keeps, the unattributed ones and one ``__other__`` owner per folded kind.
    """
    counts = dict.fromkeys(FOLDED_KINDS, 0)
    if budget <= 0:
        return Folded(result, counts)
    totals = result.per_owner()
    kind_of_folded: Dict[int, int] = {}
    for kind in FOLDED_KINDS:
        folded = folded_owners(totals, result.kinds, result.labels, kind, budget)
        counts[kind] = len(folded)
        kind_of_folded.update(dict.fromkeys(folded, kind))
    if not kind_of_folded:
        return Folded(result, counts)
    return Folded(_regrouped(result, totals, kind_of_folded), counts)


def folded_owners(
    totals: Mapping[int, float], kinds: List[int], labels: List[Key], kind: int, budget: int
) -> List[int]:
    """The owners of ``kind`` in ``totals`` (owner number -> value) past the ``budget``
    biggest, or none if there are no more than ``budget`` of them.

    A real owner whose labels are those of ``__other__`` never takes a place: it is
    folded whenever others are, so that no two series have the same labels.
    """
    other = OTHER_LABELS[kind]
    owners = list(compress(totals, map(kind.__eq__, map(kinds.__getitem__, totals))))
    named = list(compress(owners, map(other.__ne__, map(labels.__getitem__, owners))))
    if len(named) <= budget:
        return []
    values = list(map(neg, map(totals.__getitem__, named)))
    if any(map(isnan, values)):  # only from infinities of both signs: ranked last
        values = [inf if isnan(v) else v for v in values]
    # Sorted in C: by value, biggest first, then by labels (owner numbers are unique).
    ranked = sorted(zip(values, map(labels.__getitem__, named), named))
    folded = list(map(itemgetter(2), ranked[budget:]))
    if len(named) < len(owners):
        folded += compress(owners, map(other.__eq__, map(labels.__getitem__, owners)))
    return folded


def _regrouped(
    result: Attribution, totals: Mapping[int, float], kind_of_folded: Mapping[int, int]
) -> Attribution:
    """``result``'s rows in a table of their own: kept owners as they were, folded owners
    summed under the ``__other__`` owner of their kind, last in every column."""
    kinds: List[int] = []
    labels: List[Key] = []
    number_of: Dict[int, int] = {}
    for number in totals:
        if number not in kind_of_folded:
            number_of[number] = len(kinds)
            kinds.append(result.kinds[number])
            labels.append(result.labels[number])
    others: Dict[int, int] = {}
    for kind in sorted(set(kind_of_folded.values())):
        others[kind] = len(kinds)
        kinds.append(kind)
        labels.append(OTHER_LABELS[kind])
    for number, kind in kind_of_folded.items():
        number_of[number] = others[kind]
    # A labels list of its own: the renderer keeps escaped labels by the list's identity.
    regrouped = Attribution(kinds, labels)
    other_numbers = set(others.values())
    for extra, sums in result.sums.items():
        regrouped.sums[extra] = _regroup(sums, number_of, other_numbers)
    return regrouped


def _regroup(
    sums: Mapping[int, float], number_of: Mapping[int, int], others: Set[int]
) -> Dict[int, float]:
    """One column's sums by new owner number, in C loops: every kept owner has one row,
    each ``__other__`` the sum of its folded owners' rows."""
    numbers = list(map(number_of.__getitem__, sums))
    regrouped = dict(zip(numbers, sums.values()))
    for other in sorted(others & regrouped.keys()):
        del regrouped[other]  # holds one folded owner's value; the sum goes last
        regrouped[other] = sum(compress(sums.values(), map(other.__eq__, numbers)))
    return regrouped
