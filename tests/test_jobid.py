"""The jobid grammar: default forms, configured forms, quotes, truncation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prometheus_cluster_exporter.jobid import (
    DEFAULT_FORMATS,
    JobidGrammar,
    JobRef,
    ProcRef,
    _Format,
    _interpret,
    tokenize,
)

DEFAULT = JobidGrammar()


@pytest.mark.parametrize(
    ("jobid", "expected"),
    [
        ("12345", JobRef("12345")),
        ("007", JobRef("7")),
        ('"1125"', JobRef("1125")),
        ('"mpirun.1001"', ProcRef("mpirun", 1001)),
        ("mpirun.1001", ProcRef("mpirun", 1001)),
        ("my.app.1001", ProcRef("my.app", 1001)),
        ("kworker/86:1.0", ProcRef("kworker/86:1", 0)),
        ("(ostnamed).0", ProcRef("(ostnamed)", 0)),
        ("abc .0123 .-_+ .1000", ProcRef("abc .0123 .-_+ ", 1000)),
        ("nodot", None),
        ("cp.notanumber", None),
        ("", None),
        ('"', None),
        ('""', None),
        (".0", None),
        ("cp.", None),
        ("cp.-1", None),
        ("\u0661\u0662", None),
        ("cp.\u0661", None),
        ("node_exporter:989:es-2-virt3-co", None),  # %e:%u:%H is not configured by default
        ("1" * 31, None),  # a 31-digit id may have lost digits: not trusted
    ],
)
def test_default_grammar(jobid: str, expected: object) -> None:
    assert DEFAULT.parse(jobid) == expected


@pytest.mark.parametrize(
    ("formats", "jobid", "expected"),
    [
        (["%j.%u"], "4242.1001", JobRef("4242")),
        (["%j.%u", "%e.%u"], "rsync.1001", ProcRef("rsync", 1001)),
        (["%j:%u:%H"], "4242:1001:node01", JobRef("4242")),
        (["%j:%u:%H", "%e:%u:%H"], "cp:1001:node01", ProcRef("cp", 1001)),
        # Truncated at 31 bytes inside the host: the uid is complete, the host partial.
        (["%e:%u:%H"], "node_exporter:989:es-2-virt3-co", ProcRef("node_exporter", 989)),
        # Truncated right after the uid's separator.
        (
            ["%e:%u:%H"],
            "a_very_long_exe_name_x:1234567:",
            ProcRef("a_very_long_exe_name_x", 1234567),
        ),
        # Truncated inside the uid: the digits may be incomplete, so no owner is named.
        (["%e:%u:%H"], "a_very_long_executable_nam:1234", None),
        (["%e.%u.%H"], "my.app.1001.node01", ProcRef("my.app", 1001)),
        (["%e.%u.%h"], "cp.1001.node01.example.org", ProcRef("cp", 1001)),
        (["%u.%e"], "1001.python3", ProcRef("python3", 1001)),
        (["%u.%h"], "1001.node01", None),  # a uid without a process name or job names nobody
        (["%j"], "cp.1001", None),
        (["100%%.%j"], "100%.42", JobRef("42")),
    ],
)
def test_configured_formats(formats: list[str], jobid: str, expected: object) -> None:
    assert JobidGrammar(formats).parse(jobid) == expected


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("%e.%x", "unknown code %x"),
        ("%e%u", "need a separator"),
        ("%e.%", "'%' at the end"),
        ("%e.%h", "needs %j or %u"),
    ],
)
def test_bad_formats(fmt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tokenize(fmt)


def test_no_formats() -> None:
    with pytest.raises(ValueError):
        JobidGrammar([])


@given(st.text(max_size=40))
def test_default_fast_path_equals_the_general_grammar(jobid: str) -> None:
    """The regex-free default parser must agree with the regex grammar on every id."""
    truncated = len(jobid.encode("utf-8", "surrogatepass")) >= 31
    stripped = jobid[1:-1] if len(jobid) >= 2 and jobid[0] == jobid[-1] == '"' else jobid
    truncated = len(stripped.encode("utf-8", "surrogatepass")) >= 31
    general = None
    for fmt in (_Format(f) for f in DEFAULT_FORMATS):
        fields = fmt.fields(stripped, truncated)
        if fields is not None and _interpret(fields) is not None:
            general = _interpret(fields)
            break
    assert DEFAULT.parse(jobid) == general


@given(
    st.text(max_size=64),
    st.lists(
        st.sampled_from(["%j", "%e.%u", "%j:%u:%H", "%e:%u:%h", "%e.%u.%H", "%j.%u", "%u-%j"]),
        min_size=1,
        max_size=3,
    ),
)
def test_parse_never_raises(jobid: str, formats: list[str]) -> None:
    ref = JobidGrammar(formats).parse(jobid)
    assert ref is None or isinstance(ref, (JobRef, ProcRef))
    if isinstance(ref, ProcRef):
        assert ref.proc_name and ref.uid >= 0
