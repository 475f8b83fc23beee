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


def test_an_id_cut_right_after_a_separator_keeps_its_complete_fields() -> None:
    # 31 bytes, cut after the separator before the pid: the name and the uid are whole.
    cut = "a_very_long_exe_name_x.1234567."
    assert len(cut) == 31
    assert JobidGrammar(["%e.%u.%p"]).parse(cut) == ProcRef("a_very_long_exe_name_x", 1234567)


def test_an_id_cut_inside_a_later_field_still_names_its_job() -> None:
    # 31 bytes, cut inside the uid (and the host is gone): the job id before it is whole.
    cut = "4242:12345678901234567890123456"
    assert len(cut) == 31
    assert JobidGrammar(["%j:%u:%H"]).parse(cut) == JobRef("4242")


@pytest.mark.parametrize(
    ("formats", "jobid"),
    [
        (["%j:%p"], "4242:"),  # the pid is missing, and the id was not cut
        (["%j:%u:%H"], "4242::node01"),  # an empty uid is not a number
    ],
)
def test_an_id_shorter_than_31_bytes_needs_every_field(formats: list[str], jobid: str) -> None:
    assert JobidGrammar(formats).parse(jobid) is None


def test_a_format_may_end_in_a_literal() -> None:
    grammar = JobidGrammar(["%u.%e;"])
    assert grammar.parse("1001.cp;") == ProcRef("cp", 1001)
    # Cut at 31 bytes inside the name: the trailing literal is gone, uid and name remain.
    cut = "1234567.a_very_long_exe_name_xx"
    assert len(cut) == 31
    assert grammar.parse(cut) == ProcRef("a_very_long_exe_name_xx", 1234567)


def test_a_newline_in_a_process_name_is_part_of_the_name() -> None:
    # As in the default (regex-free) parser, a name may hold any character.
    assert DEFAULT.parse("a\nb.1001") == ProcRef("a\nb", 1001)
    assert JobidGrammar(["%e:%u"]).parse("a\nb:1001") == ProcRef("a\nb", 1001)


@pytest.mark.parametrize("formats", [DEFAULT_FORMATS, ("%e.%u",)])
def test_non_ascii_ids_are_measured_in_bytes(formats: tuple[str, ...]) -> None:
    grammar = JobidGrammar(formats)
    assert grammar.parse("é" * 12 + ".1234") == ProcRef("é" * 12, 1234)  # 29 bytes
    assert grammar.parse("é" * 13 + ".1234") is None  # 31 bytes: maybe cut, uid untrusted
    assert grammar.parse("é" * 14 + ".1234") is None  # 33 bytes: not from Lustre


def test_escapes_count_one_byte_each_and_the_rest_still_counts() -> None:
    grammar = JobidGrammar(["%e:%u:%H"])
    # Eleven escapes and four characters: 15 bytes in 48 characters.
    assert grammar.parse("\\x41" * 11 + ":1:h") == ProcRef("\\x41" * 11, 1)
    # One escape among 32 plain characters: 33 bytes, longer than Lustre writes.
    assert grammar.parse("x" * 28 + "\\x20" + ":1:h") is None


def test_escapes_are_counted_as_one_byte_in_an_id_of_exactly_31_characters() -> None:
    """31 characters with one escape are 28 bytes: not a cut id, so its uid counts."""
    jobid = "ab\\x20cdefghijklmnopqrstuv.1234"
    assert len(jobid) == 31
    assert JobidGrammar().parse(jobid) == ProcRef("ab\\x20cdefghijklmnopqrstuv", 1234)
    assert JobidGrammar(("%e.%u",)).parse(jobid) == ProcRef("ab\\x20cdefghijklmnopqrstuv", 1234)
