"""``prometheus-cluster-exporter report`` against a query API on 127.0.0.1: the nine
queries (selector, whole seconds, evaluated at the period's end), each format on
standard output and --output (replaced atomically), exit status 2 for a bad flag and 1
for an unreachable, failing or slow server and for a period without counters, each with
one line; credentials are sent and never shown. The pure parts: test_usage_report.py."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from prometheus_cluster_exporter import cli, usagecli
from tests.usageserver import UsageServer

PREFIX = "prometheus-cluster-exporter report: error: "
MAY, JUNE = "2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z"
#: 2024-06-01T00:00:00Z, and May's length.
JUNE_AT, MAY_SECONDS = 1717200000, 31 * 86400
PERIOD = ["--from", MAY, "--to", JUNE]
COUNTERS = {
    "cluster_job_read_bytes_total": [
        ({"account": "physics", "user": "alice"}, "100000000000000"),
        ({"account": "physics", "user": "bob"}, "40200000000000"),
        ({"account": "chem", "user": "carol"}, "3100000000"),
        ({"account": "<script>alert(1)</script>", "user": "eve"}, "2000"),
    ],
    "cluster_job_write_bytes_total": [
        ({"account": "physics", "user": "alice"}, "2000000000"),
        ({"account": "chem", "user": "carol"}, "512000000000"),
        ({"account": "chem", "user": "nobody"}, "NaN"),
    ],
    "cluster_job_metadata_ops_total": [
        ({"account": "physics", "user": "alice"}, "800000.4"),
        ({"account": "chem", "user": "dave"}, "35000"),
        ({"account": "chem", "user": "ghost"}, "-3"),
    ],
    "cluster_proc_read_bytes_total": [({"user_name": "root"}, "4400000000000")],
    "cluster_unattributed_write_bytes_total": [({"reason": "unknown_job"}, "512")],
    "cluster_unattributed_metadata_ops_total": [({"reason": "unknown_job"}, "+Inf")],
}


@pytest.fixture
def prom() -> Iterator[UsageServer]:
    server = UsageServer()
    server.results = {name: list(samples) for name, samples in COUNTERS.items()}
    server.start()
    try:
        yield server
    finally:
        server.stop()


def report(
    capsys: pytest.CaptureFixture[str], *args: str, entry: str = "usagecli"
) -> Tuple[int, str, str]:
    """Run the command in this process: (exit status, standard output, standard error)."""
    code = cli.main(["report", *args]) if entry == "cli" else usagecli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PREFIX), err
    return lines[0][len(PREFIX) :]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the queries -------------------------------------------------------------------------


def test_the_queries_cover_the_period_and_end_at_its_end(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = report(
        capsys, "--promserver", prom.url, *PERIOD, "--selector", 'job="cluster",cluster="a"'
    )
    assert (code, err) == (0, "")
    assert len(prom.queries) == 9
    assert prom.queries[0] == (
        'sum by(account,user)(increase(cluster_job_read_bytes_total{job="cluster",cluster="a"}'
        f"[{MAY_SECONDS}s]))"
    )
    for params in prom.params:
        assert f'_total{{job="cluster",cluster="a"}}[{MAY_SECONDS}s]))' in params["query"]
        assert float(params["time"]) == JUNE_AT
    by = {q.split("(increase(")[0] for q in prom.queries}
    assert by == {"sum by(account,user)", "sum by(user_name)", "sum by(reason)"}
    assert "physics" in out


def test_the_instant_is_the_end_even_with_a_skewed_server_clock(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.clock_shift = 3600.0
    code, _, err = report(capsys, "--promserver", prom.url, *PERIOD)
    assert (code, err) == (0, "")
    assert [float(p["time"]) for p in prom.params] == [JUNE_AT] * 9


def test_last_ends_now_in_whole_seconds(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = report(capsys, "--promserver", prom.url, "--last", "1d12h")
    assert code == 0
    at = float(prom.params[0]["time"])
    assert at == int(at)
    assert all("[129600s]))" in q for q in prom.queries)


# -- the formats, through the real entry point -------------------------------------------


def test_text(prom: UsageServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = report(capsys, "--promserver", prom.url, *PERIOD, entry="cli")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Lustre usage report"
    assert "(31d)" in lines[1]
    assert f"Server  {prom.url}" in out
    rows = [line.split() for line in lines if line.startswith(("physics", "  alice", "Total"))]
    assert rows[0][:5] == ["physics", "140.2", "TB", "2.0", "GB"]
    assert rows[1][:7] == ["alice", "100.0", "TB", "2.0", "GB", "800.0", "k"]
    assert rows[2][0] == "Total"
    head = next(i for i, line in enumerate(lines) if line.startswith("ACCOUNT / USER"))
    names = [line.split()[0] for line in lines[head + 1 :]]
    assert names[:3] == ["physics", "alice", "bob"]
    assert "nobody" not in out  # NaN
    assert "ghost" not in out  # negative


def test_csv_and_json_carry_exact_integers(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = report(capsys, "--promserver", prom.url, *PERIOD, "--format", "csv")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "kind,account,user,reason,read_bytes,write_bytes,metadata_ops"
    assert lines[1] == "job,physics,alice,,100000000000000,2000000000,800000"
    assert "unattributed,,,unknown_job,0,512,0" in lines
    code, out, _ = report(capsys, "--promserver", prom.url, *PERIOD, "--format=json")
    document = json.loads(out)
    assert (document["from"], document["to"], document["seconds"]) == (MAY, JUNE, MAY_SECONDS)
    assert document["total"] == {
        "read_bytes": 100000000000000 + 40200000000000 + 3100000000 + 2000 + 4400000000000,
        "write_bytes": 2000000000 + 512000000000 + 512,
        "metadata_ops": 800000 + 35000,
    }
    assert [a["account"] for a in document["accounts"]][:2] == ["physics", "chem"]


def test_html_is_self_contained_and_escaped(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = report(capsys, "--promserver", prom.url, *PERIOD, "--format", "html")
    assert code == 0
    assert 'id="chart"' in out
    assert 'id="usage"' in out
    assert "<script" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    for attribute in ("src=", "href=", "url("):
        assert attribute not in out
    assert "140.2 TB read, 2.0 GB written" in out


# -- --output ----------------------------------------------------------------------------


def test_output_replaces_the_file(
    prom: UsageServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, shown, _ = report(capsys, "--promserver", prom.url, *PERIOD, "--format=csv")
    target = tmp_path / "may.csv"
    target.write_text("old report\n")
    target.chmod(0o640)
    code, out, err = report(
        capsys, "--promserver", prom.url, *PERIOD, "--format=csv", "--output", str(target)
    )
    assert (code, out, err) == (0, "", "")
    assert target.read_text() == shown
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["may.csv"]


def test_output_is_renamed_into_place_whole(
    prom: UsageServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "may.json"
    target.write_text("old report\n")
    renamed: List[Tuple[str, str, bytes]] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        renamed.append((src, dst, Path(src).read_bytes()))
        assert target.read_text() == "old report\n"  # untouched until the rename
        real_replace(src, dst)

    monkeypatch.setattr(usagecli.os, "replace", replace)
    args = ["--promserver", prom.url, *PERIOD, "--format=json", "--output", str(target)]
    assert report(capsys, *args)[0] == 0
    [(src, dst, data)] = renamed
    assert Path(src).parent == tmp_path
    assert Path(src).name.startswith(".may.json.")
    assert dst == str(target)
    assert json.loads(data)["seconds"] == MAY_SECONDS
    assert target.read_bytes() == data


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(
    prom: UsageServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "may.txt"
    target.write_text("old report\n")

    def replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(usagecli.os, "replace", replace)
    code, out, err = report(capsys, "--promserver", prom.url, *PERIOD, "--output", str(target))
    assert (code, out) == (1, "")
    assert one_error_line(err) == f"cannot write {target}: No space left on device"
    assert target.read_text() == "old report\n"
    assert os.listdir(tmp_path) == ["may.txt"]


def test_output_into_a_missing_directory(
    prom: UsageServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "may.txt"
    code, _, err = report(capsys, "--promserver", prom.url, *PERIOD, "--output", str(target))
    assert code == 1
    assert one_error_line(err) == f"cannot write {target}: No such file or directory"


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--last", "30d", "--bogus"], "unrecognized arguments: --bogus"),
        (["--last", "30d", "--format", "pdf"], "argument -format/--format: invalid choice"),
        (["--last", "30d", "--timeout", "soon"], "expected a number of seconds"),
        (["--last", "30d", "--timeout", "0"], "expected 0 < seconds < 86400"),
        (["--from", "2024-05-32"], "--from: not a valid date or time"),
        (["--from", "May"], "--from: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM"),
        (["--from", "2024-05-01", "--to", "2024-04-01"], "is not before --to 2024-04-01"),
        (["--from", "2024-05-01", "--to", "2999-01-01"], "is in the future"),
        (["--from", "2024-05-01", "--last", "30d"], "--from and --last exclude each other"),
        ([], "give the period: --from DATE [--to DATE] or --last DURATION"),
        (["--last", "30"], "--last: expected a duration like 30d"),
        (["--last", "0s"], "the period is shorter than 1 s"),
        (["--last", "1d", "--selector", '{job="a"}'], "--selector: give label matchers"),
        (["--last", "1d", "--selector", 'job="a"\n'], None),
        (["--last", "1d", "--promserver.password-file", "/dev/null"], "needs --promserver.user"),
        (["--last", "1d", "--promserver.cert-file", "/dev/null"], "go together"),
        (["--last", "1d", "--promserver.ca-file", "/nonexistent/ca.pem"], "cannot read"),
    ],
)
def test_a_bad_flag_exits_2_with_one_line(
    prom: UsageServer, capsys: pytest.CaptureFixture[str], args: List[str], message: str
) -> None:
    if args and args[-1] == 'job="a"\n':  # a line break inside: only a trailing one is cut
        args = [*args[:-1], 'job="a"\nor vector(1)']
        message = "--selector: give label matchers without braces or line breaks"
    code, out, err = report(capsys, "--promserver", prom.url, *args)
    assert (code, out) == (2, "")
    assert message in one_error_line(err)
    assert prom.params == []


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (None, "--promserver is required"),
        ("prometheus:9090", "--promserver: expected an http:// or https:// URL"),
        ("http://u:secret@prom:99999", "--promserver: the port is not a number"),
    ],
)
def test_a_bad_server_flag_exits_2(
    capsys: pytest.CaptureFixture[str], server: str, message: str
) -> None:
    args = ["--last", "1d"] + ([] if server is None else ["--promserver", server])
    code, _, err = report(capsys, *args)
    assert code == 2
    assert message in one_error_line(err)
    assert "secret" not in err


def test_an_unreachable_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code, out, err = report(capsys, "--promserver", f"http://127.0.0.1:{port}", "--last", "1d")
    assert (code, out) == (1, "")
    assert one_error_line(err).startswith(
        f"cannot query http://127.0.0.1:{port}: connection refused or unreachable"
    )


def test_an_http_error_exits_1(prom: UsageServer, capsys: pytest.CaptureFixture[str]) -> None:
    prom.fixed = (503, b'{"status":"error","error":"too many queries"}')
    code, _, err = report(capsys, "--promserver", prom.url, *PERIOD)
    assert code == 1
    assert one_error_line(err).startswith(f"cannot query {prom.url}: answered HTTP 503")
    assert len(prom.params) == 1


def test_an_answer_that_is_not_a_vector_exits_1(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.fixed = (200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}')
    code, _, err = report(capsys, "--promserver", prom.url, *PERIOD)
    assert code == 1
    assert one_error_line(err) == (
        f"cannot query {prom.url}: job read_bytes: a 'matrix', not a vector"
    )


def test_a_slow_server_exits_1_by_the_timeout(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.delay = 3.0
    code, _, err = report(capsys, "--promserver", prom.url, *PERIOD, "--timeout", "0.5")
    assert code == 1
    assert one_error_line(err) == (
        f"cannot query {prom.url}: answer not complete by the deadline (--timeout)"
    )


def test_a_period_without_counters_exits_1(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.results = {}
    code, out, err = report(capsys, "--promserver", prom.url, *PERIOD, "--format=json")
    assert (code, out) == (1, "")
    assert one_error_line(err) == (
        f"no counters for {MAY} to {JUNE} in {prom.url}: is the exporter run with "
        "--metrics.counters and scraped by this Prometheus?"
    )
    assert len(prom.params) == 9


def test_counters_that_did_not_grow_make_an_empty_report(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.results = {"cluster_job_read_bytes_total": [({"account": "a", "user": "b"}, "0")]}
    code, out, _ = report(capsys, "--promserver", prom.url, *PERIOD)
    assert code == 0
    assert "(no IO in this period)" in out


# -- credentials -------------------------------------------------------------------------


def _auth(prom: UsageServer) -> str:
    return {k.lower(): v for k, v in prom.headers[0].items()}.get("authorization", "")


@pytest.mark.parametrize("form", ["text", "csv", "json", "html"])
def test_a_password_in_the_url_is_sent_never_shown(
    prom: UsageServer, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    url = f"http://u:secret@127.0.0.1:{prom.port}"
    code, out, err = report(capsys, "--promserver", url, *PERIOD, "--format", form)
    assert code == 0
    assert _auth(prom) == "Basic " + base64.b64encode(b"u:secret").decode()
    assert "secret" not in out + err
    assert "u:" not in out
    if form != "csv":  # the others show the server
        assert f"127.0.0.1:{prom.port}" in out


def test_a_password_in_the_url_is_never_in_an_error(
    prom: UsageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    for url, fixed in (
        (f"http://u:secret@127.0.0.1:{port}", None),
        (f"http://u:secret@127.0.0.1:{prom.port}", (500, b"secret? no")),
        (f"http://u:secret@127.0.0.1:{prom.port}", (200, b"not json")),
    ):
        prom.fixed = fixed
        code, out, err = report(capsys, "--promserver", url, "--last", "1d")
        assert code == 1
        assert "u:secret" not in out + err
        assert "cannot query http://127.0.0.1:" in one_error_line(err)
    prom.fixed = None
    prom.results = {}
    url = f"http://u:secret@127.0.0.1:{prom.port}"
    code, _, err = report(capsys, "--promserver", url, "--last", "1d")
    assert code == 1
    assert "secret" not in err
    assert f"in http://127.0.0.1:{prom.port}: is the exporter" in err


def test_password_and_token_files(
    prom: UsageServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    password, token = tmp_path / "password", tmp_path / "token"
    password.write_text("pa55word\n")
    token.write_text("t0ken-value\n")
    args = ["--promserver", prom.url, *PERIOD]
    user = ["--promserver.user", "alice", "--promserver.password-file", str(password)]
    code, out, err = report(capsys, *args, *user)
    assert code == 0
    assert _auth(prom) == "Basic " + base64.b64encode(b"alice:pa55word").decode()
    assert "pa55word" not in out + err
    prom.headers.clear()
    code, out, err = report(capsys, *args, "--promserver.bearer-token-file", str(token))
    assert code == 0
    assert _auth(prom) == "Bearer t0ken-value"
    assert "t0ken" not in out + err
    code, _, err = report(capsys, *args, *user, "--promserver.bearer-token-file", str(token))
    assert code == 2
    assert "exclude each other" in one_error_line(err)


# -- the command line --------------------------------------------------------------------


def test_help_explains_the_selector(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["report", "--help"])
    assert caught.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "usage: prometheus-cluster-exporter report" in out
    assert "HA pair" in out
    assert "several clusters" in out
    for flag in ("--from", "--to", "--last", "--format", "--output", "--selector", "--timeout",
                 "--promserver.bearer-token-file", "--promserver.insecure-skip-verify"):  # fmt: skip
        assert flag in out


def test_the_exporter_help_names_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "'prometheus-cluster-exporter report --help'" in capsys.readouterr().out


def test_the_installed_command(tmp_path: Path) -> None:
    """As a process: the exit status and the one line, through ``python -m``."""
    port = closed_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", "report", "--last", "1d",
         f"--promserver=http://u:secret@127.0.0.1:{port}"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert one_error_line(done.stderr).startswith(f"cannot query http://127.0.0.1:{port}: ")
    assert "secret" not in done.stderr


def test_the_installed_command_with_a_skewed_server_clock(prom: UsageServer) -> None:
    """The client's warning about a skewed clock is the exporter's: the report sends the
    period's end as it is, and says nothing."""
    prom.clock_shift = 3600.0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", "report", *PERIOD,
         f"--promserver={prom.url}", "--format=csv"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert "job,physics,alice,,100000000000000,2000000000,800000\n" in done.stdout
    assert [float(p["time"]) for p in prom.params] == [JUNE_AT] * 9


def test_a_ca_file_that_is_not_pem_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    args = ["--promserver", "https://u:secret@127.0.0.1:1", "--last", "1d"]
    code, _, err = report(capsys, *args, "--promserver.ca-file", str(ca))
    assert code == 2
    assert one_error_line(err).startswith("the TLS files cannot be used: TLS error")
    assert "secret" not in err
