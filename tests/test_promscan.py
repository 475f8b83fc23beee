"""The scanner of answers in Prometheus's exact shape, against the general parsers.

Every answer must give the same rates (and the same count of skipped samples) whichever
path decodes it: the scanner where the answer has the exact shape, the typed decoder or
the tolerant parser where it does not.
"""

from __future__ import annotations

import gzip
import json
import math
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.records import Parsed, Rates, columns_of
from prometheus_cluster_exporter.sources.httpbody import Body
from prometheus_cluster_exporter.sources.prometheus import LustreQueries, PrometheusLustreSource
from prometheus_cluster_exporter.sources.promscan import scan_pieces, scan_vector
from prometheus_cluster_exporter.sources.promvector import parse_jobid_vector, parse_target_vector

MDT = ".*-MDT[0-9a-fA-F]{4}"
INSTANT = 1733090000.123


class Canned:
    """A query API whose answer arrives in pieces of ``size`` bytes (gzip-compressed if
    ``packed``)."""

    def __init__(self, body: bytes, size: int = 1 << 20, packed: bool = False) -> None:
        self.body = gzip.compress(body) if packed else body
        self.size = size
        self.encoding = "gzip" if packed else "identity"

    def query_body(self, promql: str, deadline: float, what: str, at: object = None) -> Body:
        raw = [self.body[i : i + self.size] for i in range(0, len(self.body), self.size)]
        return Body(raw, self.encoding, 0, what)


def source(
    body: bytes, fs_label: bool = False, size: int = 1 << 20, packed: bool = False
) -> PrometheusLustreSource:
    client = Canned(body, size, packed)
    return PrometheusLustreSource(client, LustreQueries.build(fs_label=fs_label))  # type: ignore[arg-type]


def answer(samples: List[Tuple[dict, str]], spaced: bool = False, times: Any = None) -> bytes:
    """An answer as Prometheus writes it (compact, labels sorted, one instant)."""
    result = [
        {"metric": dict(sorted(labels.items())), "value": [times[i] if times else INSTANT, v]}
        for i, (labels, v) in enumerate(samples)
    ]
    payload = {"status": "success", "data": {"resultType": "vector", "result": result}}
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(payload, separators=separators, ensure_ascii=False).encode()


def rows(parsed: Parsed[Rates]) -> Tuple[List[Tuple[Tuple[str, ...], str, float]], int]:
    found = [(c.extra, j, v) for c in parsed.items for j, v in zip(c.jobids, c.values)]
    return sorted(found, key=repr), parsed.skipped


def tolerant_read(body: bytes, fs_label: bool) -> Tuple[Any, int]:
    parsed = parse_jobid_vector(json.loads(body), "jobid", "read query", "fs" if fs_label else None)
    extra = (lambda r: (r.fs,)) if fs_label else None
    return rows(Parsed(columns_of(parsed.items, extra), parsed.skipped))


def tolerant_metadata(body: bytes, fs_label: bool) -> Tuple[Any, int]:
    parsed = parse_target_vector(json.loads(body), "jobid", "target", MDT, "metadata query")
    extra = (lambda r: (r.target, r.fs)) if fs_label else (lambda r: (r.target,))
    return rows(Parsed(columns_of(parsed.items, extra), parsed.skipped))


# Values as Prometheus writes them, and the non-finite ones it can write.
values = st.one_of(
    st.floats(0, 1e15, allow_nan=False).map(lambda f: f"{f:.6g}" if f % 1 else str(int(f))),
    st.integers(1, 10**12).map(str),
    st.sampled_from(["NaN", "+Inf", "-Inf", "0.5", "1e+06"]),
)
# Ids the scanner takes: no quote, backslash or control character (JSON escapes those).
plain_ids = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'), max_size=20
)
any_ids = st.text(max_size=20)
filesystems = st.sampled_from(["scratch", "home", "fs-2"])
targets = st.sampled_from(["scratch-MDT0000", "scratch-MDT0001", "home-MDT0000", "scratch-OST0001"])


@settings(max_examples=200)
@given(
    st.lists(st.tuples(plain_ids, values, filesystems), max_size=30),
    st.booleans(),
    st.integers(1, 400),
    st.booleans(),
)
def test_the_scanner_takes_prometheus_answers_and_agrees(
    samples: List[Tuple[str, str, str]], fs_label: bool, size: int, packed: bool
) -> None:
    """Whatever the pieces the answer arrives in, compressed or not."""
    labelled = [({"jobid": j, "fs": f} if fs_label else {"jobid": j}, v) for j, v, f in samples]
    body = answer(labelled)
    names = ("jobid", "fs") if fs_label else ("jobid",)
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    assert scan_pieces(pieces, names) is not None  # the fast path, not a fallback
    scanned = source(body, fs_label, size, packed)
    if all(v in ("NaN", "+Inf", "-Inf") for _, v, _ in samples) and samples:
        with pytest.raises(SourceError):
            scanned.read_rates(math.inf)
        return
    assert rows(scanned.read_rates(math.inf)) == tolerant_read(body, fs_label)


@settings(max_examples=200)
@given(st.lists(st.tuples(plain_ids, values, targets), max_size=30), st.booleans())
def test_metadata_scans_agree_and_keep_only_mdts(
    samples: List[Tuple[str, str, str]], fs_label: bool
) -> None:
    body = answer([({"jobid": j, "target": t}, v) for j, v, t in samples])
    assert scan_vector(body, ("jobid", "target")) is not None
    try:
        want: Optional[Any] = tolerant_metadata(body, fs_label)
    except SourceError:
        want = None
    try:
        got: Optional[Any] = rows(source(body, fs_label).metadata_rates(math.inf))
    except SourceError:
        got = None
    assert got == want


@settings(max_examples=300)
@given(
    st.lists(st.tuples(any_ids, values), min_size=1, max_size=20),
    st.booleans(),
    st.sampled_from(["none", "extra label", "missing label", "second instant"]),
)
def test_any_answer_gives_the_rates_of_the_tolerant_parser(
    samples: List[Tuple[str, str]], spaced: bool, oddity: str
) -> None:
    """Escapes, spacing, other labels, another instant: whichever path takes the answer,
    the rates and the skipped count are the tolerant parser's."""
    labelled = [({"jobid": j}, v) for j, v in samples]
    times = None
    if oddity == "extra label":
        labelled[0][0]["host"] = "n1"
    elif oddity == "missing label":
        del labelled[-1][0]["jobid"]
    elif oddity == "second instant":
        times = [INSTANT] * len(labelled)
        times[-1] = INSTANT + 1
    body = answer(labelled, spaced, times)
    try:
        want: Optional[Any] = tolerant_read(body, False)
    except SourceError:
        want = None
    try:
        got: Optional[Any] = rows(source(body).read_rates(math.inf))
    except SourceError:
        got = None
    assert got == want


@pytest.mark.parametrize(
    "body",
    [
        # another label in one sample
        b'{"status":"success","data":{"resultType":"vector","result":['
        b'{"metric":{"jobid":"1"},"value":[1.5,"2"]},'
        b'{"metric":{"host":"a","jobid":"2"},"value":[1.5,"3"]}]}}',
        # a second instant
        b'{"status":"success","data":{"resultType":"vector","result":['
        b'{"metric":{"jobid":"1"},"value":[1.5,"2"]},{"metric":{"jobid":"2"},"value":[1.6,"3"]}]}}',
        # an escaped quote in an id
        b'{"status":"success","data":{"resultType":"vector","result":['
        b'{"metric":{"jobid":"a\\"]}]"},"value":[1.5,"2"]}]}}',
        # a raw marker byte
        b'{"status":"success","data":{"resultType":"vector","result":['
        b'{"metric":{"jobid":"a\x01b"},"value":[1.5,"2"]}]}}',
        # a value that is no number
        b'{"status":"success","data":{"resultType":"vector","result":['
        b'{"metric":{"jobid":"1"},"value":[1.5,"lots"]}]}}',
        # not a success
        b'{"status":"error","data":{"resultType":"vector","result":['
        b'{"metric":{"jobid":"1"},"value":[1.5,"2"]}]}}',
        # a matrix
        b'{"status":"success","data":{"resultType":"matrix","result":['
        b'{"metric":{"jobid":"1"},"value":[1.5,"2"]}]}}',
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric"',
    ],
)
def test_the_scanner_refuses_what_is_not_exactly_the_shape(body: bytes) -> None:
    assert scan_vector(body, ("jobid",)) is None


def test_the_scanner_takes_empty_answers_warnings_and_many_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
    found = scan_vector(empty, ("jobid",))
    assert found is not None and list(found.ids) == [] and len(found.values) == 0
    samples = [({"jobid": str(i)}, str(i)) for i in range(5000)]
    body = answer(samples)[:-1] + b',"warnings":["PromQL info: x"]}'
    monkeypatch.setattr("prometheus_cluster_exporter.sources.promscan.SLICE", 997)
    found = scan_vector(body, ("jobid",))
    assert found is not None
    assert list(found.ids) == [str(i) for i in range(5000)] and len(found.ids) == 5000
    assert list(found.values) == [float(i) for i in range(5000)]


def test_a_scan_past_the_deadline_is_late() -> None:
    body = answer([({"jobid": "1"}, "2")])
    with pytest.raises(SourceError, match="deadline"):
        scan_vector(body, ("jobid",), deadline=0.0, what="read query")


def test_a_streamed_answer_keeps_the_cap_and_refuses_broken_gzip() -> None:
    body = answer([({"jobid": str(i)}, "1") for i in range(2000)])
    packed = gzip.compress(body)
    capped = Body([packed[:100], packed[100:]], "gzip", len(body) - 1, "read query")
    with pytest.raises(SourceError, match="max-response-bytes"):
        scan_pieces(capped.pieces(), ("jobid",))
    whole = Body([packed[:100], packed[100:]], "gzip", len(body), "read query")
    found = scan_pieces(whole.pieces(), ("jobid",))
    assert found is not None and len(found.values) == 2000
    broken = Body([packed[:50], b"\x00" * 64, packed[114:]], "gzip", 0, "read query")
    with pytest.raises(SourceError, match="does not decompress"):
        broken.whole()


def test_a_big_compressed_answer_is_decompressed_ahead_on_its_own_thread() -> None:
    import threading
    import time

    body = answer([({"jobid": str(i)}, "1") for i in range(20000)])
    packed = gzip.compress(body)
    raw = [packed[i : i + 1000] for i in range(0, len(packed), 1000)]
    assert len(raw) > 4
    assert Body(raw, "gzip", 0, "read query").whole() == body
    found = scan_pieces(Body(raw, "gzip", 0, "read query").pieces(), ("jobid",))
    assert found is not None and len(found.values) == 20000
    broken = Body([*raw[:3], b"\x00" * 1000, *raw[4:]], "gzip", 0, "read query")
    with pytest.raises(SourceError, match="does not decompress"):
        broken.whole()
    before = threading.active_count()
    pieces = Body(raw, "gzip", 0, "read query").pieces()
    next(pieces)
    assert threading.active_count() == before + 1
    pieces.close()  # the reader stops early: so does the thread
    end = time.monotonic() + 30
    while threading.active_count() > before and time.monotonic() < end:
        time.sleep(0.05)
    assert threading.active_count() == before


def test_an_answer_not_in_the_shape_is_given_up_early_not_gathered() -> None:
    read = 0

    def pieces(head: bytes) -> Iterator[bytes]:
        nonlocal read
        yield head
        for _ in range(200):  # 200 MB, were it all read
            read += 1
            yield b" " * (1 << 20)

    assert scan_pieces(pieces(b'{"status":"success",'), ("jobid",)) is None
    assert read <= 2
    read = 0
    start = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"jobid":"'
    assert scan_pieces(pieces(start), ("jobid",)) is None
    assert read <= 9
