"""Flags: Go-compatible forms, defaults, validation with one message and exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.config import (
    Config,
    ConfigError,
    parse_listen_address,
    re2_problem,
)
from prometheus_cluster_exporter.flags import CHECK, SERVE, Mode, parse_args, parse_config


@pytest.mark.parametrize(
    "argv",
    [
        ["-promserver", "http://prom:9090", "-port", "9999", "-timeout", "7", "-timerange", "5m"],
        ["-promserver=http://prom:9090", "-port=9999", "-timeout=7", "-timerange=5m"],
        [
            "--promserver",
            "http://prom:9090",
            "--port",
            "9999",
            "--timeout",
            "7",
            "--timerange",
            "5m",
        ],
        ["--promserver=http://prom:9090", "--port=9999", "--timeout=7", "--timerange=5m"],
    ],
)
def test_go_flag_forms(argv: list[str]) -> None:
    config = parse_config(argv)
    assert config.promserver == "http://prom:9090"
    assert config.port == 9999
    assert config.timeout == 7.0
    assert config.timerange == "5m"


def test_defaults_match_the_original() -> None:
    config = parse_config(["--promserver=http://prom:9090"])
    assert (config.port, config.timeout, config.timerange) == (9846, 15.0, "1m")
    assert config.log_level == "INFO"
    assert config.listen_host == ""
    assert config.rate_function == "irate"
    assert config.squeue_path == "squeue" and config.getent_path == "getent"
    assert config.max_series == 0  # no cardinality budget: the original's series
    assert parse_config(["--promserver=http://p:1", "-metrics.max-series", "500"]).max_series == 500
    assert config.top_jobs == 10
    assert parse_config(["--promserver=http://p:1", "--metrics.top-jobs=0"]).top_jobs == 0


def test_log_levels_case_insensitive() -> None:
    assert parse_config(["-promserver=http://p:1", "-log=debug"]).log_level == "DEBUG"
    assert parse_config(["-promserver=http://p:1", "-log", "TRACE"]).log_level == "TRACE"


def test_listen_address_overrides_port() -> None:
    config = parse_config(
        ["--promserver=http://p:1", "--port=1", "--web.listen-address=127.0.0.1:2"]
    )
    assert (config.listen_host, config.port) == ("127.0.0.1", 2)


@pytest.mark.parametrize(
    ("address", "expected"),
    [(":9846", ("", 9846)), ("127.0.0.1:1", ("127.0.0.1", 1)), ("[::1]:5", ("::1", 5))],
)
def test_parse_listen_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["9846", "host:", "host:abc", ":99999"])
def test_bad_listen_address(address: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen_address(address)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "--promserver is required"),
        (["--promserver=prom:9090"], "--promserver: expected an http"),
        (["--promserver=http://p:1", "--timerange=1000m"], "--timerange"),
        (["--promserver=http://p:1", "--timerange=5y"], "--timerange"),
        (["--promserver=http://p:1", "--timerange=m"], "--timerange"),
        (["--promserver=http://p:1", "--timerange=0m"], "--timerange"),
        (
            ["--promserver=http://p:1", "--timeout=0"],
            "--timeout: must be more than 0 and at most 3600 seconds, got 0",
        ),
        (["--promserver=http://p:1", "--timeout=abc"], "timeout"),
        (["--promserver=http://p:1", "--port=70000"], "--port"),
        (["--promserver=http://p:1", "--log=VERBOSE"], "--log"),
        (["--promserver=http://p:1", "--lustre.jobid-label=job-id"], "--lustre.jobid-label"),
        (["--promserver=http://p:1", "--lustre.read-metric=1abc"], "--lustre.read-metric"),
        (["--promserver=http://p:1", "--lustre.mdt-target-regex=(("], "--lustre.mdt-target-regex"),
        (["--promserver=http://p:1", "--max-response-bytes=-1"], "--max-response-bytes"),
        (
            ["--promserver=http://p:1", "--metrics.max-series=-1"],
            "--metrics.max-series: must be 0 (no budget) or positive",
        ),
        (
            ["--promserver=http://p:1", "--metrics.max-series=1e3"],
            "--metrics.max-series: expected a whole number of owners, got '1e3'",
        ),
        (["--promserver=http://p:1", "--no-such-flag"], "unrecognized"),
        (["--demo", "--promserver=http://p:1"], "exclude each other"),
        (["--promserver=http://p:1", "--timeout=3601"], "got 3601"),
        (["--promserver=http://p:1", "--log.format=xml"], "--log.format"),
        (["--promserver=http://p:1", "--log.level=verbose"], "--log.level: expected one of"),
        (
            ["--promserver=http://p:1", "--lustre.mdt-target-regex=(?!home).*-MDT.*"],
            "does not support negative lookahead",
        ),
        (
            ["--promserver=http://p:1", "--lustre.mdt-target-regex=(a)\\1"],
            "does not support backreference",
        ),
    ],
)
def test_bad_values_exit_2_with_one_message(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_config(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1, err


def test_cli_process_exit_status_and_version() -> None:
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "prometheus_cluster_exporter",
            "-timerange=10x",
            "-promserver=http://p:1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("prometheus-cluster-exporter: error: --timerange")
    version = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", "-version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"prometheus-cluster-exporter {__version__}"


def test_config_is_frozen() -> None:
    config = Config(promserver="http://p:1")
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--lustre.jobid-format=%e.%x"], "--lustre.jobid-format: '%e.%x': unknown code %x"),
        (["--lustre.jobid-format=%e%u"], "need a separator"),
        (["--slurm.job-grace-period=soon"], "--slurm.job-grace-period: expected a duration"),
        (["--getent.cache-ttl=-5"], "--getent.cache-ttl"),
        (["--slurm.sacct-path="], "--slurm.sacct-path: must not be empty"),
        (["--metrics.top-jobs=-1"], "--metrics.top-jobs: must be 0 (off) to 1000, got -1"),
        (["--metrics.top-jobs=1001"], "--metrics.top-jobs: must be 0 (off) to 1000, got 1001"),
        (["--metrics.top-jobs=ten"], "--metrics.top-jobs: expected a whole number of jobs"),
    ],
)
def test_bad_attribution_flags(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_config(["--promserver=http://p:1", *argv])
    assert info.value.code == 2
    assert fragment in capsys.readouterr().err


def test_durations_and_formats() -> None:
    config = parse_config(
        ["--promserver=http://p:1", "--slurm.job-grace-period=2m", "--getent.cache-ttl=0",
         "--lustre.jobid-format=%j:%u:%H", "--lustre.jobid-format=%e:%u:%H", "--timerange=5m"]
    )  # fmt: skip
    assert config.job_grace == 120.0
    assert config.getent_cache_ttl == 0.0
    assert config.jobid_formats == ("%j:%u:%H", "%e:%u:%H")
    default = parse_config(["--promserver=http://p:1", "--timerange=5m"])
    assert default.effective_job_grace == 300 + 60
    assert default.jobid_formats == ("%j", "%e.%u")


@pytest.mark.parametrize(
    ("argv", "sacct", "fs_label"),
    [
        (["--slurm.sacct=true", "-metrics.fs-label=1"], True, True),
        (["--slurm.sacct=false", "-metrics.fs-label=F"], False, False),
        (["-slurm.sacct=True", "--metrics.fs-label"], True, True),
    ],
)
def test_go_style_boolean_flags(argv: list[str], sacct: bool, fs_label: bool) -> None:
    config = parse_config(["--promserver=http://p:1", *argv])
    assert (config.sacct, config.fs_label) == (sacct, fs_label)


def test_go_style_boolean_modes_and_a_bad_boolean(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--demo=true", "--once=false"]).mode == Mode(SERVE, demo=True)
    assert parse_args(["-demo", "-check-config=t"]).mode == Mode(CHECK, demo=True)
    with pytest.raises(SystemExit) as info:
        parse_config(["--promserver=http://p:1", "--slurm.sacct=yes"])
    assert info.value.code == 2
    assert "--slurm.sacct: expected true or false, got 'yes'" in capsys.readouterr().err


def test_log_level_and_format_flags() -> None:
    config = parse_config(["--promserver=http://p:1", "--log.level=warn", "--log.format=logfmt"])
    assert (config.log_level, config.log_format) == ("WARNING", "logfmt")
    assert parse_config(["--promserver=http://p:1", "-log=debug"]).log_format == "text"


@pytest.mark.parametrize(
    ("regex", "problem"),
    [
        (".*-MDT[0-9a-fA-F]{4}", None),
        ("scratch-MDT000[01]|home-MDT0000", None),
        (r"x\(?=y", None),  # an escaped parenthesis is a character, not a group
        ("(?<=a)b", "lookbehind '(?<='"),
        ("a++", "possessive quantifier '++'"),
        (r"a\Z", r"\Z (RE2 spells it \z)"),
    ],
)
def test_re2_check(regex: str, problem: str | None) -> None:
    assert re2_problem(regex) == problem
