"""Access control: TLS, mutual TLS and basic auth (exporter-toolkit web config), proven
with curl; invalid web configs refused at start-up; upstream credentials and TLS."""

from __future__ import annotations

import base64
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Union

import bcrypt
import pytest

from prometheus_cluster_exporter.config import ConfigError
from prometheus_cluster_exporter.webconfig import BasicAuth, load_web_config
from tests.helpers import Exporter, FakePrometheus
from tests.tlsutil import Pki, make_pki

Start = Callable[..., Exporter]
PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=8)).decode()


def web_config(path: Path, body: Union[dict, str]) -> str:
    """Write a web config file: a mapping as YAML, a string as it is."""
    import yaml

    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body))
    return str(path)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed for the HTTPS client tests")
    return subprocess.run(
        ["curl", "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def status_of(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.rsplit("\n", 1)[-1]


def test_tls_and_basic_auth_with_curl(
    start_exporter: Start, tmp_path: Path, pki: Pki, password_hash: str
) -> None:
    config = web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {
                "cert_file": str(pki.server_cert),
                "key_file": str(pki.server_key),
            },
            "basic_auth_users": {"prometheus": password_hash},
            "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff"}},
        },
    )
    exporter = start_exporter("--demo", f"--web.config.file={config}", promserver=False)
    assert exporter.url.startswith("https://")
    url = exporter.url + "/metrics"

    ok = curl("--cacert", str(pki.ca), "-u", f"prometheus:{PASSWORD}", "-D", "-", url)
    assert status_of(ok) == "200", ok.stderr
    assert "cluster_exporter_scrape_ok 1.0" in ok.stdout
    assert "x-content-type-options: nosniff" in ok.stdout.lower()

    assert status_of(curl("--cacert", str(pki.ca), url)) == "401"
    assert status_of(curl("--cacert", str(pki.ca), "-u", "prometheus:wrong", url)) == "401"
    assert status_of(curl("--cacert", str(pki.ca), "-u", f"nobody:{PASSWORD}", url)) == "401"
    # A password over bcrypt's 72 bytes is refused with 401, not a dropped connection.
    assert status_of(curl("--cacert", str(pki.ca), "-u", "prometheus:" + "x" * 100, url)) == "401"
    # The scheme name is case-insensitive.
    token = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    lower = curl("--cacert", str(pki.ca), "-H", f"Authorization: basic {token}", url)
    assert status_of(lower) == "200", lower.stderr
    # The certificate is checked by the client: another CA does not trust it.
    untrusted = curl("--cacert", str(pki.other_ca), "-u", f"prometheus:{PASSWORD}", url)
    assert untrusted.returncode != 0
    # Plain HTTP to the TLS port gets no metrics.
    plain = curl("-u", f"prometheus:{PASSWORD}", url.replace("https://", "http://"))
    assert "cluster_exporter_scrape_ok" not in plain.stdout
    # The password never reaches the log.
    assert PASSWORD not in exporter.log()
    assert "Web access: TLS, basic auth (1 users)" in exporter.log()


def test_mutual_tls(start_exporter: Start, tmp_path: Path, pki: Pki) -> None:
    config = web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {
                "cert_file": str(pki.server_cert),
                "key_file": str(pki.server_key),
                "client_auth_type": "RequireAndVerifyClientCert",
                "client_ca_file": str(pki.ca),
            }
        },
    )
    exporter = start_exporter("--demo", f"--web.config.file={config}", promserver=False)
    url = exporter.url + "/metrics"
    with_cert = curl("--cacert", str(pki.ca), "--cert", str(pki.client_cert),
                     "--key", str(pki.client_key), url)  # fmt: skip
    assert status_of(with_cert) == "200", with_cert.stderr
    without = curl("--cacert", str(pki.ca), url)
    assert status_of(without) != "200"
    assert "cluster_exporter_scrape_ok" not in without.stdout


def test_slow_tls_handshake_does_not_block_other_clients(
    start_exporter: Start, tmp_path: Path, pki: Pki
) -> None:
    import socket

    config = web_config(
        tmp_path / "web.yml",
        {"tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}},
    )
    exporter = start_exporter("--demo", f"--web.config.file={config}", promserver=False)
    port = int(exporter.url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]  # never handshake
    try:
        result = curl("--cacert", str(pki.ca), exporter.url + "/metrics")
        assert status_of(result) == "200"
    finally:
        for sock in idle:
            sock.close()


# -- basic auth checks ----------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_passwords_over_72_bytes_compare_their_first_72_as_go_does() -> None:
    long = "p" * 72 + "-ignored-tail"
    auth = BasicAuth({"alice": bcrypt.hashpw(b"p" * 72, bcrypt.gensalt(rounds=4)).decode()})
    assert auth.check(basic("alice", long))  # Go's CompareHashAndPassword accepts it too
    assert auth.check(basic("alice", "p" * 72))
    assert not auth.check(basic("alice", "q" * 100))  # no exception, just a refusal
    assert not auth.check(basic("nobody", "q" * 100))


def test_basic_scheme_is_case_insensitive() -> None:
    auth = BasicAuth({"alice": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()})
    for scheme in ("Basic", "basic", "BASIC", "bAsIc"):
        assert auth.check(basic("alice", "pw").replace("Basic", scheme, 1))
    assert not auth.check(basic("alice", "pw").replace("Basic", "Bearer", 1))
    assert not auth.check("Basic")


class FakeClock:
    """Time that passes only when bcrypt runs: 10 ms at cost 4, 40 ms at cost 6."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def cost(self, hashed: bytes) -> None:
        self.now += {4: 0.010, 6: 0.040}[int(hashed[4:6])]


def test_unknown_users_cost_as_much_as_the_dearest_known_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cheap = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()
    dear = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=6)).decode()
    clock = FakeClock()
    real_checkpw, real_hashpw = bcrypt.checkpw, bcrypt.hashpw
    costs: List[int] = []

    def checkpw(password: bytes, hashed: bytes) -> bool:
        costs.append(int(hashed[4:6]))
        clock.cost(hashed)
        return bool(real_checkpw(password, hashed))

    def hashpw(password: bytes, salt: bytes) -> bytes:
        clock.cost(salt)
        return bytes(real_hashpw(password, salt))

    monkeypatch.setattr(bcrypt, "checkpw", checkpw)
    monkeypatch.setattr(bcrypt, "hashpw", hashpw)
    auth = BasicAuth({"cheap": cheap, "dear": dear}, clock=clock)
    assert auth.failure_floor == pytest.approx(0.040)  # one check at the highest cost
    costs.clear()
    auth.verify(basic("nobody", "right"))
    assert costs == [6]  # the stand-in hash has the highest configured cost
    refusals = [basic("nobody", "x"), basic("cheap", "wrong"), basic("dear", "wrong"),
                "Basic !!!", "Bearer abc", None, basic("cheap", "x" * 200)]  # fmt: skip
    for header in refusals:
        started = clock.now
        ok, pad = auth.verify(header)
        assert not ok
        assert clock.now - started + pad == pytest.approx(0.040), header  # all alike
    assert auth.verify(basic("cheap", "right")) == (True, 0.0)


def tls_config(pki: Pki, **extra: object) -> Dict[str, Any]:
    """A ``tls_server_config`` with the test server's certificate and key, plus extra."""
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), **extra}
    return {"tls_server_config": tls}


# Each invalid web config (made from the test PKI) and the part of its message that names
# the problem. Every case passes, or fails differently, without its check in webconfig.py.
BAD_WEB_CONFIGS = [
    pytest.param(lambda pki: "tls_server_config: [unclosed", "is not valid YAML", id="not-yaml"),
    pytest.param(lambda pki: "- a list", "the file must be a mapping", id="not-a-mapping"),
    pytest.param(
        lambda pki: {"tls_server_config": {"cert_file": "/nonexistent.pem",
                                           "key_file": str(pki.server_key)}},
        "tls_server_config.cert_file: no such file: /nonexistent.pem",
        id="missing-cert-file",
    ),
    pytest.param(
        lambda pki: {"tls_server_config": {"cert_file": str(pki.server_cert)}},
        "needs both cert_file and key_file",
        id="cert-without-key",
    ),
    pytest.param(
        lambda pki: {"tls_server_config": {"cert_file": str(pki.ca),
                                           "key_file": str(pki.server_key)}},
        "cannot load cert_file/key_file",
        id="key-does-not-match-cert",
    ),
    pytest.param(
        lambda pki: tls_config(pki, client_auth_type="RequireAndVerifyClientCert"),
        "client_auth_type RequireAndVerifyClientCert needs client_ca_file",
        id="client-auth-without-ca",
    ),
    pytest.param(
        lambda pki: tls_config(pki, client_auth_type="RequireAnyClientCert"),
        "client_auth_type: expected one of",
        id="unverified-client-auth",
    ),
    pytest.param(
        lambda pki: tls_config(pki, min_version="SSL3"),
        "min_version: expected one of",
        id="unknown-min-version",
    ),
    pytest.param(
        lambda pki: tls_config(pki, cipher_suites=["TLS_AES_128_GCM_SHA256"]),
        "tls_server_config: unsupported setting(s): cipher_suites",
        id="cipher-suites",
    ),
    pytest.param(
        lambda pki: {"basic_auth_users": {"alice": "plaintext"}},
        "basic_auth_users.alice: not a bcrypt hash",
        id="plaintext-password",
    ),
    pytest.param(
        lambda pki: {"rate_limit": {"interval": "1s"}},
        "top level: unsupported setting(s): rate_limit",
        id="rate-limit",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("make_body", "message"), BAD_WEB_CONFIGS)
def test_invalid_web_config_is_refused(
    tmp_path: Path, pki: Pki, make_body: Callable[[Pki], Union[dict, str]], message: str
) -> None:
    path = web_config(tmp_path / "web.yml", make_body(pki))
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        load_web_config(path)
    text = str(refused.value)
    assert text.startswith("--web.config.file"), text  # names the flag
    assert "\n" not in text, text  # one line


def test_invalid_web_config_stops_the_exporter_with_one_line(tmp_path: Path, pki: Pki) -> None:
    path = web_config(
        tmp_path / "web.yml", tls_config(pki, client_auth_type="RequireAndVerifyClientCert")
    )
    result = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", "--demo",
         "--web.listen-address=127.0.0.1:0", f"--web.config.file={path}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "client_auth_type RequireAndVerifyClientCert needs client_ca_file" in result.stderr


def test_unreadable_web_config_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", "--demo",
         f"--web.config.file={tmp_path / 'missing.yml'}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--web.config.file: cannot read" in result.stderr


# -- upstream credentials ------------------------------------------------------------------


def test_upstream_basic_auth_from_files(
    start_exporter: Start, fake_prometheus: FakePrometheus, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text("upstream-Secret\n")
    exporter = start_exporter("--promserver.user=exporter",
                              f"--promserver.password-file={tmp_path / 'password'}",
                              "--log=TRACE")  # fmt: skip
    assert exporter.scrape().value("cluster_exporter_scrape_ok") == 1
    expected = "Basic " + base64.b64encode(b"exporter:upstream-Secret").decode()
    assert {h.get("Authorization") for h in fake_prometheus.headers} == {expected}
    assert "upstream-Secret" not in exporter.log()


def test_upstream_credentials_in_the_url_are_not_logged(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    url = fake_prometheus.url.replace("http://", "http://user:url-Secret@")
    fake_prometheus.set("read", b"oops", status=500)
    exporter = start_exporter(f"--promserver={url}", "--log=TRACE", promserver=False)
    exporter.scrape()
    assert fake_prometheus.headers[0]["Authorization"].startswith("Basic ")
    assert "url-Secret" not in exporter.log()
    assert "source read query failed" in exporter.log()


def test_upstream_bearer_token_is_reread_when_rotated(
    start_exporter: Start, fake_prometheus: FakePrometheus, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("first-Token\n")
    exporter = start_exporter(f"--promserver.bearer-token-file={token}", "--log=TRACE")
    exporter.scrape()
    token.write_text("second-Token-rotated\n")
    exporter.scrape()
    seen = [h.get("Authorization") for h in fake_prometheus.headers]
    assert seen[:3] == ["Bearer first-Token"] * 3
    assert seen[3:] == ["Bearer second-Token-rotated"] * 3
    assert "Token" not in exporter.log()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--promserver.password-file=/etc/hostname"],
            "--promserver.password-file needs --promserver.user",
        ),
        (
            ["--promserver.user=a", "--promserver.password-file=/nonexistent"],
            "cannot read /nonexistent",
        ),
        (
            ["--promserver.user=a", "--promserver.bearer-token-file=/etc/hostname"],
            "exclude each other",
        ),
        (["--promserver.cert-file=/etc/hostname"], "go together"),
    ],
)
def test_bad_upstream_auth_flags(argv: List[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", "--promserver=http://p:9090",
         "--web.listen-address=127.0.0.1:0", *argv],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr


@pytest.fixture
def tls_prometheus(pki: Pki) -> FakePrometheus:
    fake = FakePrometheus()
    fake.load_fixtures()
    fake.start()
    assert fake.server is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    fake.server.socket = context.wrap_socket(fake.server.socket, server_side=True)
    yield fake
    fake.stop()


TLS_READ_QUERY = "sum by(jobid)(irate(lustre_job_read_bytes_total[1m]) != 0)"


def test_upstream_tls_with_custom_ca(
    start_exporter: Start, tls_prometheus: FakePrometheus, pki: Pki
) -> None:
    url = tls_prometheus.url.replace("http://", "https://")
    trusted = start_exporter(
        f"--promserver={url}", f"--promserver.ca-file={pki.ca}", promserver=False
    )
    assert trusted.scrape().value("cluster_exporter_scrape_ok") == 1
    # The fake's socket speaks only TLS: a query it recorded came over TLS.
    assert TLS_READ_QUERY in tls_prometheus.queries
    over_tls = len(tls_prometheus.queries)

    untrusted = start_exporter(f"--promserver={url}", f"--promserver.ca-file={pki.other_ca}",
                               promserver=False)  # fmt: skip
    s = untrusted.scrape()
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert "TLS error" in untrusted.log()
    assert len(tls_prometheus.queries) == over_tls  # no query got past a refused handshake

    insecure = start_exporter(f"--promserver={url}", "--promserver.insecure-skip-verify",
                              promserver=False)  # fmt: skip
    assert insecure.scrape().value("cluster_exporter_scrape_ok") == 1
    assert TLS_READ_QUERY in tls_prometheus.queries[over_tls:]
