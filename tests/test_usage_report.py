"""The usage report's pure parts: the period (dates, datetimes with offsets, --last, every
error), the PromQL (selector, whole seconds), the answers (NaN, infinite, negative and
zero values left out), the model (sorting, shares, totals) and the four formats (text in
SI units, CSV and JSON in exact integers that parse back, HTML self-contained and
escaped). The command itself, against a server: test_usage_cli.py."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import timedelta, timezone
from html.parser import HTMLParser
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

import pytest

from prometheus_cluster_exporter import usage
from prometheus_cluster_exporter.usage import (
    JOB,
    OUTSIDE,
    UNATTRIBUTED,
    Answer,
    AnswerError,
    Report,
    SelectorError,
    Usage,
    build_report,
    check_selector,
    parse_answer,
    queries,
)
from prometheus_cluster_exporter.usagehtml import MAX_BARS, render_html
from prometheus_cluster_exporter.usageperiod import (
    Period,
    PeriodError,
    format_duration,
    make_period,
    parse_duration,
    parse_instant,
)
from prometheus_cluster_exporter.usagerender import (
    CSV_HEADER,
    human_bytes,
    human_ops,
    render_csv,
    render_json,
    render_text,
)
from tests.usageserver import vector

UTC = timezone.utc
CEST = timezone(timedelta(hours=2))
#: 2024-06-01T00:00:00Z
JUNE = 1717200000
MAY = 1714521600
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time: Central European, with summer time (no tzdata needed)."""
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- the period --------------------------------------------------------------------------


def test_a_date_is_local_midnight(berlin: None) -> None:
    assert parse_instant("--from", "2024-05-01") == MAY - 2 * 3600  # CEST, UTC+2
    assert parse_instant("--from", "2024-01-01") == 1704067200 - 3600  # CET, UTC+1
    assert parse_instant("--from", "2024-05-01", tz=UTC) == MAY


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T00:00Z", MAY),
        ("2024-05-01T00:00:00Z", MAY),
        ("2024-05-01T08:30:15z", MAY + 8 * 3600 + 30 * 60 + 15),
        ("2024-05-01T02:00+02:00", MAY),
        ("2024-04-30T18:30:00-05:30", MAY),
        ("2024-05-01T00:00+00:00", MAY),
        ("2024-05-01 00:00Z", MAY),
    ],
)
def test_datetimes_with_offsets(text: str, expected: int) -> None:
    assert parse_instant("--to", text, tz=CEST) == expected


def test_a_datetime_without_offset_is_local_time(berlin: None) -> None:
    assert parse_instant("--from", "2024-05-01T02:00") == MAY
    assert parse_instant("--from", "2024-05-01T02:00:00") == MAY
    assert parse_instant("--from", "2024-05-01T02:00", tz=UTC) == MAY + 7200


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-5-1",
        "01/05/2024",
        "2024-05-01T",
        "2024-05-01T10",
        "2024-05-01T10:00:00.5Z",
        "2024-05-01T10:00+0200",
        "2024-05-01T10:00 CEST",
        "yesterday",
        "2024-02-30",
        "2024-13-01",
        "2024-05-01T24:00",
        "2024-05-01T10:60",
        "2024-05-01T10:00+24:00",
        "2024-05-01T10:00-01:60",
        "0000-01-01",
    ],
)
def test_a_bad_date_names_its_flag(text: str) -> None:
    with pytest.raises(PeriodError, match=r"^--from: ") as caught:
        parse_instant("--from", text, tz=UTC)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 12 * 3600),
        ("90m", 90 * 60),
        ("45s", 45),
        ("2w", 14 * 86400),
        ("1d12h", 36 * 3600),
        ("1h30m15s", 5415),
        ("1y", 365 * 86400),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "30", "1h1d", "5ms", "-1d", "1.5h", "1D", "1d 12h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(PeriodError, match=r"^--last: expected a duration"):
        parse_duration(text)


def test_durations_are_shown_as_they_parse() -> None:
    assert format_duration(31 * 86400) == "31d"
    assert format_duration(36 * 3600) == "1d12h"
    assert format_duration(5415) == "1h30m15s"
    assert format_duration(45) == "45s"
    for seconds in (1, 59, 3600, 86399, 86400 * 400 + 7):
        assert parse_duration(format_duration(seconds)) == seconds


NOW = JUNE + 12 * 3600 + 0.75


def test_periods() -> None:
    assert make_period("2024-05-01", "2024-06-01", None, NOW, UTC) == Period(MAY, JUNE)
    assert make_period("2024-05-01", None, None, NOW, UTC) == Period(MAY, JUNE + 12 * 3600)
    assert make_period(None, None, "30d", NOW, UTC) == Period(
        JUNE + 12 * 3600 - 30 * 86400, JUNE + 12 * 3600
    )
    assert make_period(None, None, "1s", NOW).seconds == 1
    # A minute into the future is a clock difference, not a mistake.
    assert make_period("2024-05-01", "2024-06-01T12:00:50Z", None, NOW, UTC).end == NOW - 0.75 + 50


@pytest.mark.parametrize(
    ("start", "end", "last", "message"),
    [
        ("2024-05-01", None, "30d", "--from and --last exclude each other"),
        (None, None, None, "give the period: --from DATE"),
        (None, "2024-06-01", None, "give the period: --from DATE"),
        (None, "2024-06-01", "30d", "--to goes with --from"),
        ("2024-06-01", "2024-05-01", None, "--from 2024-06-01 is not before --to 2024-05-01"),
        ("2024-06-01", "2024-06-01", None, "is not before --to 2024-06-01"),
        ("2024-06-02", None, None, "--from 2024-06-02 is not before --to now"),
        ("2024-05-01", "2024-06-01T12:01:01Z", None, "is in the future"),
        ("2024-05-01", "2030-01-01", None, "is in the future"),
        (None, None, "0s", "the period is shorter than 1 s"),
        (None, None, "60y", "starts before 1970"),
        ("2024-05-01", "2024-06-31", None, "--to: not a valid date"),
        ("May 1st", None, None, "--from: expected YYYY-MM-DD"),
    ],
)
def test_period_errors(
    start: Optional[str], end: Optional[str], last: Optional[str], message: str
) -> None:
    with pytest.raises(PeriodError) as caught:
        make_period(start, end, last, NOW, UTC)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# -- the queries -------------------------------------------------------------------------


def test_the_nine_queries() -> None:
    found = queries(2678400)
    assert len(found) == 9
    assert found[0].promql == (
        "sum by(account,user)(increase(cluster_job_read_bytes_total[2678400s]))"
    )
    assert {q.promql for q in found} == {
        f"sum by({by})(increase(cluster_{kind}_{field}_total[2678400s]))"
        for kind, by in (("job", "account,user"), ("proc", "user_name"), ("unattributed", "reason"))
        for field in ("read_bytes", "write_bytes", "metadata_ops")
    }
    assert {(q.kind, q.labels) for q in found} == {
        (JOB, ("account", "user")),
        (OUTSIDE, ("user_name",)),
        (UNATTRIBUTED, ("reason",)),
    }


def test_the_selector_is_in_every_query() -> None:
    selector = check_selector(' job="cluster",cluster=~"a|b", ')
    assert selector == 'job="cluster",cluster=~"a|b"'
    for query in queries(86400, selector):
        assert '_total{job="cluster",cluster=~"a|b"}[86400s]))' in query.promql


@pytest.mark.parametrize(
    "text", ['job="a"}', '{job="a"}', 'job="a"\nor vector(1)', 'job="a"\r,x="b"', "cluster", "a b"]
)
def test_bad_selectors(text: str) -> None:
    with pytest.raises(SelectorError, match=r"^--selector: "):
        check_selector(text)


def test_no_selector() -> None:
    assert check_selector("  ") == ""


# -- the answers -------------------------------------------------------------------------


def test_answers_keep_whole_values_above_zero() -> None:
    body = vector(
        [
            ({"account": "a", "user": "x"}, "1.5e3"),
            ({"account": "a", "user": "y"}, "2.6"),
            ({"account": "a", "user": "nan"}, "NaN"),
            ({"account": "a", "user": "inf"}, "+Inf"),
            ({"account": "a", "user": "ninf"}, "-Inf"),
            ({"account": "a", "user": "neg"}, "-5"),
            ({"account": "a", "user": "zero"}, "0"),
            ({"account": "a", "user": "tiny"}, "0.4"),
            ({"user": "lost"}, "7"),
        ]
    )
    answer = parse_answer(body, ("account", "user"))
    assert answer.values == {("a", "x"): 1500, ("a", "y"): 3, ("", "lost"): 7}
    assert answer.series == 9


def test_an_empty_answer_has_no_series() -> None:
    assert parse_answer(vector([]), ("reason",)) == Answer({}, 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"status":"error","errorType":"bad_data","error":"x"}', "not 'success'"),
        (b'{"status":"success","data":{"resultType":"matrix","result":[]}}', "not a vector"),
        (b"<html>proxy login</html>", "not a Prometheus query answer"),
        (b'{"status":"success"}', "not a Prometheus query answer"),
        (b'{"status":"success","data":{"resultType":"vector","result":[{}]}}', "not a Prom"),
        (
            b'{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"x"]}]}}',
            "Prom",
        ),
        (b"[]", "not a Prometheus query answer"),
    ],
)
def test_bad_answers(body: bytes, message: str) -> None:
    with pytest.raises(AnswerError, match=message):
        parse_answer(body, ("reason",))


# -- the model ---------------------------------------------------------------------------

PERIOD = Period(MAY, JUNE)

Values = Mapping[Tuple[str, ...], int]


def answers(
    job: Tuple[Values, Values, Values] = ({}, {}, {}),
    outside: Tuple[Values, Values, Values] = ({}, {}, {}),
    lost: Tuple[Values, Values, Values] = ({}, {}, {}),
) -> Dict[Tuple[str, str], Answer]:
    found: Dict[Tuple[str, str], Answer] = {}
    for kind, triple in ((JOB, job), (OUTSIDE, outside), (UNATTRIBUTED, lost)):
        for field, values in zip(usage.FIELDS, triple):
            found[(kind, field)] = Answer(dict(values), len(values))
    return found


def sample_report(account: str = "physics") -> Report:
    job = (
        {(account, "alice"): 100_000_000_000_000, (account, "bob"): 40_200_000_000_000,
         ("chem", "carol"): 3_100_000_000, ("bio", "dan"): 1_000},
        {(account, "alice"): 2_000_000_000, (account, "bob"): 1_100_000_000,
         ("chem", "carol"): 512_000_000_000, ("bio", "erin"): 1_000},
        {(account, "alice"): 800_000, (account, "bob"): 400_000, ("chem", "dave"): 35_000},
    )  # fmt: skip
    outside = ({("root",): 4_400_000_000_000}, {("root",): 1_000_000_000}, {("root",): 12})
    lost = ({("unknown_job",): 312_000_000_000}, {("unknown_job",): 512}, {("unknown_job",): 950})
    return build_report(PERIOD, "http://prom:9090", 'job="cluster"', answers(job, outside, lost))


def test_accounts_biggest_first_with_users_biggest_first() -> None:
    report = sample_report()
    assert [a.account for a in report.accounts] == ["physics", "chem", "bio"]
    physics, chem, bio = report.accounts
    assert [u.name for u in physics.users] == ["alice", "bob"]
    assert physics.usage == Usage(140_200_000_000_000, 3_100_000_000, 1_200_000)
    # Users with metadata operations only are kept, after those with bytes.
    assert [u.name for u in chem.users] == ["carol", "dave"]
    assert chem.users[1].usage == Usage(0, 0, 35_000)
    # Ties (1000 bytes each) go by name.
    assert [u.name for u in bio.users] == ["dan", "erin"]


def test_ties_between_accounts_go_by_name() -> None:
    job = ({("b", "x"): 10, ("a", "y"): 4, ("c", "z"): 10}, {("a", "y"): 6}, {})
    report = build_report(PERIOD, "s", "", answers(job=job))
    assert [a.account for a in report.accounts] == ["a", "b", "c"]


def test_shares_and_totals() -> None:
    report = sample_report()
    everything = 140_200_000_000_000 + 3_100_000_000 + 3_100_000_000 + 512_000_000_000
    everything += 2_000 + 4_400_000_000_000 + 1_000_000_000 + 312_000_000_000 + 512
    assert report.total.bytes == everything
    assert report.total.metadata_ops == 1_200_000 + 35_000 + 12 + 950
    physics = report.accounts[0]
    assert physics.share == pytest.approx(100 * physics.usage.bytes / everything)
    assert report.unattributed_share == pytest.approx(100 * 312_000_000_512 / everything)
    assert report.outside_total == Usage(4_400_000_000_000, 1_000_000_000, 12)
    assert report.unattributed_total == Usage(312_000_000_000, 512, 950)
    shares = sum(a.share for a in report.accounts) + report.unattributed_share
    assert shares + 100 * report.outside_total.bytes / everything == pytest.approx(100)


def test_zero_rows_are_dropped_and_no_bytes_means_no_shares() -> None:
    body = vector([({"account": "a", "user": "x"}, "0"), ({"account": "a", "user": "y"}, "-1")])
    zero = parse_answer(body, ("account", "user"))
    found = answers()
    found[(JOB, "read_bytes")] = zero
    found[(UNATTRIBUTED, "metadata_ops")] = Answer({("r",): 5}, 1)
    report = build_report(PERIOD, "s", "", found)
    assert report.accounts == ()
    assert report.series == 3
    assert report.unattributed_share == 0.0
    assert report.total == Usage(0, 0, 5)


# -- the formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text", "ops"),
    [
        (0, "0 B", "0"),
        (512, "512 B", "512"),
        (999, "999 B", "999"),
        (1_000, "1.0 kB", "1.0 k"),
        (35_000, "35.0 kB", "35.0 k"),
        (999_949, "999.9 kB", "999.9 k"),
        (999_950, "1.0 MB", "1.0 M"),
        (1_200_000, "1.2 MB", "1.2 M"),
        (3_100_000_000, "3.1 GB", "3.1 G"),
        (140_200_000_000_000, "140.2 TB", "140.2 T"),
        (2 * 10**18, "2.0 EB", "2.0 E"),
    ],
)
def test_human_units(value: int, text: str, ops: str) -> None:
    assert human_bytes(value) == text
    assert human_ops(value) == ops


def test_text() -> None:
    text = render_text(sample_report(), tz=CEST)
    lines = text.splitlines()
    assert lines[0] == "Lustre usage report"
    assert (
        lines[1] == "Period  2024-05-01 02:00:00 UTC+02:00 to 2024-06-01 02:00:00 UTC+02:00 (31d)"
    )
    assert lines[2] == "        2024-05-01 00:00:00 UTC to 2024-06-01 00:00:00 UTC"
    assert lines[3] == 'Server  http://prom:9090, selector job="cluster"'
    head = lines[5]
    assert head.split() == ["ACCOUNT", "/", "USER", "READ", "WRITTEN", "METADATA", "OPS", "SHARE"]
    names = [re.match(r" *\S+(?: \S+)*", line).group(0) for line in lines[6:]]  # type: ignore[union-attr]
    table = dict(zip(names, lines[6:]))
    physics = table["physics"].split()
    assert physics[1:] == ["140.2", "TB", "3.1", "GB", "1.2", "M", physics[7], "%"]
    assert physics[7] == f"{sample_report().accounts[0].share:.1f}"
    assert table["  alice"].split()[1:] == ["100.0", "TB", "2.0", "GB", "800.0", "k"]
    assert table["  dave"].split()[1:] == ["0", "B", "0", "B", "35.0", "k"]
    assert table["Unattributed"].split()[1:5] == ["312.0", "GB", "512", "B"]
    assert table["  unknown_job"].split()[1:] == ["312.0", "GB", "512", "B", "950"]
    assert table["  root"].split()[1:] == ["4.4", "TB", "1.0", "GB", "12"]
    assert table["Total"].split()[-2:] == ["100.0", "%"]
    assert [name.strip() for name in names] == ["physics", "alice", "bob", "chem", "carol", "dave", "bio", "dan", "erin",
                     "Outside Slurm jobs", "root", "Unattributed", "unknown_job", "Total"]  # fmt: skip
    # Aligned: every number column ends where its heading does.
    for heading in ("READ", "WRITTEN", "OPS"):
        end = head.index(heading) + len(heading)
        assert all(line[end - 1] != " " and line[end : end + 1] in ("", " ") for line in lines[6:])


def test_text_escapes_control_characters_and_shows_empty_names() -> None:
    job = ({("\x1b[2J", ""): 5}, {}, {})
    text = render_text(build_report(PERIOD, "s", "", answers(job=job)), tz=UTC)
    assert "\x1b" not in text
    assert "\\x1b[2J" in text
    assert "  (none)" in text
    # Local time is UTC: the period is shown once.
    assert "Period  2024-05-01 00:00:00 UTC to 2024-06-01 00:00:00 UTC (31d)\nServer  s\n" in text


def test_text_of_a_period_without_io() -> None:
    report = build_report(PERIOD, "s", "", answers())
    assert "(no IO in this period)" in render_text(report, tz=UTC)


def test_csv_parses_back_to_the_exact_numbers() -> None:
    report = sample_report(account='acme, "research"\nlab')
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert tuple(rows[0]) == CSV_HEADER
    assert render_csv(report).splitlines()[0] == ",".join(CSV_HEADER)
    first = rows[0]
    assert first == {"kind": "job", "account": "acme, \"research\"\nlab", "user": "alice",
                     "reason": "", "read_bytes": "100000000000000", "write_bytes": "2000000000",
                     "metadata_ops": "800000"}  # fmt: skip
    assert [(r["kind"], r["user"], r["reason"]) for r in rows[-2:]] == [
        ("outside_jobs", "root", ""),
        ("unattributed", "", "unknown_job"),
    ]
    assert rows[-1]["write_bytes"] == "512"
    for i, field in enumerate(usage.FIELDS):
        assert sum(int(r[field]) for r in rows) == report.total[i]
    assert len(rows) == 6 + 1 + 1  # alice, bob, carol, dave, dan, erin; root; unknown_job


def test_json_parses_back_to_the_exact_numbers() -> None:
    report = sample_report()
    document = json.loads(render_json(report))
    assert document["from"] == "2024-05-01T00:00:00Z"
    assert document["to"] == "2024-06-01T00:00:00Z"
    assert document["seconds"] == 31 * 86400
    assert document["server"] == "http://prom:9090"
    assert [a["account"] for a in document["accounts"]] == ["physics", "chem", "bio"]
    physics = document["accounts"][0]
    assert physics["read_bytes"] == 140_200_000_000_000
    assert isinstance(physics["read_bytes"], int)
    assert physics["share"] == pytest.approx(report.accounts[0].share, abs=1e-4)
    assert physics["users"][0] == {
        "user": "alice",
        "read_bytes": 100_000_000_000_000,
        "write_bytes": 2_000_000_000,
        "metadata_ops": 800_000,
    }
    assert document["outside_jobs"] == [
        {"user": "root", "read_bytes": 4_400_000_000_000, "write_bytes": 1_000_000_000,
         "metadata_ops": 12}
    ]  # fmt: skip
    assert document["unattributed"][0]["reason"] == "unknown_job"
    assert document["total"] == dict(report.total._asdict())
    assert document["unattributed_share"] == pytest.approx(report.unattributed_share, abs=1e-4)


class _Page(HTMLParser):
    """The elements of a page: (tag, attributes), and the text of each table row."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: List[Tuple[str, Dict[str, Optional[str]]]] = []
        self.rows: List[List[str]] = []
        self._cell: Optional[List[str]] = None

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def test_html_is_self_contained() -> None:
    text = render_html(sample_report(), tz=CEST)
    page = _page(text)
    for tag, attrs in page.elements:
        for name in ("src", "href", "xlink:href", "srcset", "data", "action"):
            assert name not in attrs, (tag, attrs)
        assert tag not in ("script", "link", "iframe", "img", "object", "embed")
    assert "url(" not in text
    assert "@import" not in text
    assert "@font-face" not in text
    assert not re.search(r"(src|href)\s*=", text)
    assert text.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in text


def test_html_shows_the_table_and_one_bar_per_account() -> None:
    report = sample_report()
    text = render_html(report, tz=CEST)
    page = _page(text)
    ids = {attrs.get("id"): tag for tag, attrs in page.elements if attrs.get("id")}
    assert ids == {"chart": "svg", "usage": "table"}
    rows = page.rows
    assert rows[0] == ["Account / user", "Read", "Written", "Metadata operations", "Share"]
    assert rows[1][:4] == ["physics", "140.2 TB", "3.1 GB", "1.2 M"]
    assert rows[2][:4] == ["alice", "100.0 TB", "2.0 GB", "800.0 k"]
    assert [row[0] for row in rows[-5:]] == [
        "Outside Slurm jobs", "root", "Unattributed", "unknown_job", "Total"
    ]  # fmt: skip
    assert rows[-1][4] == "100.0 %"
    classes = [attrs.get("class") for tag, attrs in page.elements if tag == "tr"][1:4]
    assert classes == ["top", "sub", "sub"]
    chart = text[text.index('<svg id="chart"') : text.index("</svg>")]
    # A legend, and per account a read and a written bar with the values.
    assert ">read</text>" in chart
    assert ">written</text>" in chart
    assert chart.count("<g>") == len(report.accounts)
    assert "140.2 TB read, 3.1 GB written" in chart
    assert "3.1 GB read, 512.0 GB written" in chart
    assert "2024-05-01 02:00:00 UTC+02:00 to 2024-06-01 02:00:00 UTC+02:00 (31d)" in text
    assert "2024-05-01 00:00:00 UTC to 2024-06-01 00:00:00 UTC" in text
    assert "http://prom:9090, selector job=&quot;cluster&quot;" in text


def test_html_escapes_every_label_value() -> None:
    lost = ({('"><img src=x onerror=alert(2)>',): 9}, {}, {})
    job = ({(HOSTILE, "<b>eve</b>"): 10**12}, {}, {})
    outside = ({("&amp;root",): 5}, {}, {})
    report = build_report(PERIOD, "s", 'x="<i>"', answers(job=job, outside=outside, lost=lost))
    text = render_html(report, tz=UTC)
    assert HOSTILE not in text
    assert "<script" not in text
    assert "<b>eve" not in text
    assert "<img" not in text
    assert "<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;eve&lt;/b&gt;" in text
    assert "&amp;amp;root" in text
    page = _page(text)
    assert [row[0] for row in page.rows[1:3]] == [HOSTILE, "<b>eve</b>"]
    assert {tag for tag, _ in page.elements} <= {
        "html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "p", "svg",
        "rect", "text", "g", "table", "thead", "tbody", "tr", "th", "td", "sup", "footer",
    }  # fmt: skip


def test_html_chart_of_many_accounts_and_of_none() -> None:
    job = ({(f"acct{i:03d}", "u"): 1000 + i for i in range(MAX_BARS + 5)}, {}, {})
    text = render_html(build_report(PERIOD, "s", "", answers(job=job)), tz=UTC)
    assert text.count("<g>") == MAX_BARS
    assert "and 5 smaller accounts, in the table" in text
    assert text.count('<tr class="top">') == MAX_BARS + 5
    empty = render_html(build_report(PERIOD, "s", "", answers()), tz=UTC)
    assert 'id="chart"' in empty
    assert "No IO in Slurm jobs." in empty
