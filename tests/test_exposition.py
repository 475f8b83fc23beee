"""The fast renderer writes valid text format: what prometheus-client's parser reads
back from it is exactly what prometheus-client's own renderer would have given, gauges
and counters (``--metrics.counters``) alike."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from prometheus_cluster_exporter.exposition import format_value, render
from prometheus_cluster_exporter.metrics import (
    ALL,
    COUNTER,
    JOB_READ,
    JOB_READ_TOTAL,
    PROC_METADATA,
    SCRAPE_OK,
    UNATTRIBUTED_METADATA_TOTAL,
    MetricSpec,
    OwnerRows,
    RowFamily,
)


def reference(families: list[RowFamily]) -> bytes:
    """The same families rendered by prometheus-client (the reference the renderer
    must agree with)."""

    def family_of(family: RowFamily) -> GaugeMetricFamily | CounterMetricFamily:
        spec = family.spec
        kind = CounterMetricFamily if spec.type == COUNTER else GaugeMetricFamily
        out = kind(spec.name, spec.help, labels=spec.labels)
        for labels, value in family.rows:
            out.add_metric(labels, value)
        return out

    class Static:
        def collect(self):  # type: ignore[no-untyped-def]
            return [family_of(f) for f in families]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Static())  # type: ignore[arg-type]
    return generate_latest(registry)


def parsed(text: bytes) -> list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]]:
    return [
        (f.name, f.type, f.documentation, [(s.name, s.labels, s.value) for s in f.samples])
        for f in text_string_to_metric_families(text.decode())
    ]


values = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, 1e6, 1048576.0])


@settings(max_examples=150)
@given(
    st.lists(
        st.tuples(st.sampled_from(ALL), st.dictionaries(
            st.tuples(st.text(max_size=12), st.text(max_size=12), st.text(max_size=12),
                      st.text(max_size=12), st.text(max_size=12)),
            values, max_size=6)),
        max_size=5,
    )
)  # fmt: skip
def test_render_reads_back_like_prometheus_client(
    specs: list[tuple[MetricSpec, dict[tuple[str, ...], float]]],
) -> None:
    families = []
    for spec, rows in specs:
        width = len(spec.labels)
        families.append(RowFamily(spec, [(key[:width], value) for key, value in rows.items()]))
    ours = render(families)
    assert parsed(ours) == parsed(reference(families))


def test_escaping_and_label_order() -> None:
    families = [
        RowFamily(JOB_READ, [(('a"b', "back\\slash\nnewline"), 1048576.0)]),
        RowFamily(PROC_METADATA, [(("p", "g", "u", "fs-MDT0000"), 3.0)]),
        RowFamily(SCRAPE_OK, [((), 1.0)]),
    ]
    text = render(families).decode()
    assert (
        'cluster_job_read_throughput_bytes{account="a\\"b",user="back\\\\slash\\nnewline"} '
        "1048576.0\n" in text
    )
    # Labels in sorted order, as prometheus-client writes them.
    assert (
        'cluster_proc_metadata_operations{group_name="g",proc_name="p",target="fs-MDT0000",'
        'user_name="u"} 3.0\n' in text
    )
    assert "cluster_exporter_scrape_ok 1.0\n" in text
    assert parsed(text.encode()) == parsed(reference(families))


def test_format_value() -> None:
    for value in (0.0, 1.5, 1048576.0, 1e22, -3.25, 5e-324, 123456789.123):
        assert float(format_value(value)) == value
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
    assert format_value(math.nan) == "NaN"


def test_invalid_names_are_refused() -> None:
    bad = MetricSpec("bad name'", "x", ())
    with pytest.raises(ValueError):
        render([RowFamily(bad, [((), 1.0)])])
    with pytest.raises(ValueError, match="invalid metric type"):
        render([RowFamily(SCRAPE_OK._replace(type="gauge\n# x"), [((), 1.0)])])


def test_counters_are_typed_counter_and_read_back_as_counters() -> None:
    """--metrics.counters: ``# TYPE ... counter``, by the plain and by the owner-number
    renderer, byte for byte what prometheus-client writes for a counter (values below
    1e6, which both write alike)."""
    plain = RowFamily(JOB_READ_TOTAL, [(("physics", "alice"), 65536.0)])
    owned = RowFamily(
        UNATTRIBUTED_METADATA_TOTAL,
        OwnerRows([("unknown_job",), ("x", "y")], [2, 0], 2, {("fs-MDT0000",): {0: 7.0, 1: 9.0}}),
    )
    text = render([plain, owned])
    assert text == reference([plain, RowFamily(owned.spec, list(owned.rows))])
    assert b"# TYPE cluster_job_read_bytes_total counter\n" in text
    assert b"# TYPE cluster_unattributed_metadata_ops_total counter\n" in text
    families = list(text_string_to_metric_families(text.decode()))
    assert [(f.name, f.type) for f in families] == [
        ("cluster_job_read_bytes", "counter"),
        ("cluster_unattributed_metadata_ops", "counter"),
    ]
    sample = families[1].samples[0]
    assert sample.name == "cluster_unattributed_metadata_ops_total"
    assert sample.labels == {"reason": "unknown_job", "target": "fs-MDT0000"}
    assert sample.value == 7.0
    # The gauges stay gauges.
    assert b"# TYPE cluster_job_read_throughput_bytes gauge\n" in render(
        [RowFamily(JOB_READ, [(("a", "b"), 1.0)])]
    )


def test_the_gzip_page_is_the_page_compressed_piece_by_piece(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gzip

    from prometheus_cluster_exporter import exposition
    from prometheus_cluster_exporter.metrics import JOB_READ, SCRAPE_OK, RowFamily

    monkeypatch.setattr(exposition, "LINES_AT_ONCE", 7)
    rows = {(f"acct{i % 5}", f'us"er\\{i}'): float(i) for i in range(100)}
    families = [RowFamily(JOB_READ, rows.items()), RowFamily(SCRAPE_OK, [((), 1.0)])]
    plain = render(families)
    assert plain.count(b"\n") == 100 + 1 + 4
    assert b'user="us\\"er\\\\99"} 99.0\n' in plain
    assert gzip.decompress(exposition.render_gzip(families, b"# tail\n")) == plain + b"# tail\n"


def test_rows_by_owner_number_render_like_plain_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte for byte, in pieces of a few lines (some with no line of the kind at hand)."""
    from prometheus_cluster_exporter import exposition

    monkeypatch.setattr(exposition, "LINES_AT_ONCE", 2)
    from prometheus_cluster_exporter.metrics import (
        JOB_METADATA,
        JOB_READ,
        PROC_METADATA,
        UNATTRIBUTED_METADATA,
        OwnerRows,
        RowFamily,
    )

    keys = [("unknown_job",), ('ph"ys', "al\\ice"), ("cp", "hpc", "bob\n"), ("chem", "bob")]
    keys += [("cp", "hpc", f"u{i}") for i in range(9)] + [("a", f"u{i}") for i in range(5)]
    kinds = [2, 0, 1, 0] + [1] * 9 + [0] * 5
    finite = {("scratch-MDT0000",): {1: 1.5, 0: 2.0, 2: 3e21, 3: 7.0}, ('ho"me',): {2: 0.25}}
    finite[("scratch-MDT0000",)].update({n: float(n) for n in range(4, 18)})
    odd = {("scratch-MDT0000",): {1: 1.5, 3: float("nan")}, ("home",): {1: float("inf")}}
    specs = ((0, JOB_METADATA), (1, PROC_METADATA), (2, UNATTRIBUTED_METADATA))
    for sums in (finite, odd):
        for kind, spec in specs:
            rows = OwnerRows(keys, kinds, kind, sums)
            fast = render([RowFamily(spec, rows)])
            assert fast == render([RowFamily(spec, list(rows))])
            assert fast.count(b"\n") == 2 + len(rows) == 2 + len(list(rows))
    rows = OwnerRows(keys, kinds, 0, {(): {1: 4.0, 3: 5.0}})
    assert render([RowFamily(JOB_READ, rows)]).endswith(
        b'cluster_job_read_throughput_bytes{account="ph\\"ys",user="al\\\\ice"} 4.0\n'
        b'cluster_job_read_throughput_bytes{account="chem",user="bob"} 5.0\n'
    )


def test_a_failing_gzip_page_raises_and_leaves_no_thread() -> None:
    import threading

    from prometheus_cluster_exporter import exposition
    from prometheus_cluster_exporter.metrics import SCRAPE_OK, MetricSpec, RowFamily

    before = threading.active_count()
    bad = RowFamily(MetricSpec("bad name", "x", ()), [((), 1.0)])
    with pytest.raises(ValueError, match="invalid metric"):
        exposition.render_gzip([RowFamily(SCRAPE_OK, [((), 1.0)]), bad])
    assert threading.active_count() == before
