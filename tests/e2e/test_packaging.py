"""Packaging: the wheel installs into a clean virtual environment; the single-file build
runs on the oldest and a current system Python with the right exit codes; the RPM and
the Debian package carry the exporter, its unit, options, user, dashboard, rules and
license, and what they install runs. All show the one release version."""

from __future__ import annotations

import email.parser
import gzip
import importlib.util
import json
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator, List, Set

import pytest

from prometheus_cluster_exporter import __version__
from tests.e2e import components as c
from tests.helpers import Scrape

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAME = "prometheus-cluster-exporter"
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: The #! line of the file the packages install: the system Python, isolated.
PACKAGE_INTERPRETER = "/usr/bin/python3 -I"
OPTIONS_FILE = f"/etc/default/{NAME}.options"
LICENSE = (ROOT / "LICENSE").read_text()
DEPLOY = ROOT / "deploy"
SHARED_FILES = {
    "cluster-exporter.json": DEPLOY / "grafana" / "cluster-exporter.json",
    "rules.yml": DEPLOY / "prometheus" / "rules.yml",
    "join-rules.yml": DEPLOY / "prometheus" / "join-rules.yml",
    "scrape-config.yml": DEPLOY / "prometheus" / "scrape-config.yml",
}


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def build_info_versions(text: str) -> Set[str]:
    return {
        dict(labels)["version"] for labels in Scrape(text).series("cluster_exporter_build_info")
    }


def assert_demo_once_works(*command: str) -> None:
    once = run(*command, "--demo", "--once", timeout=120)
    assert once.returncode == 0, once.stderr[-2000:]
    s = Scrape(once.stdout)
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert s.series("cluster_job_read_throughput_bytes")
    assert build_info_versions(once.stdout) == {__version__}


def assert_version(*command: str) -> None:
    version = run(*command, "--version", timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"{NAME} {__version__}"


def find_python(minor: str) -> Path:
    """Python ``minor`` (e.g. "3.9") where CI's .ci/run looks for it; none is a failure."""
    pyenv = shutil.which("pyenv")
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    if pyenv:
        roots.insert(0, run(pyenv, "root", timeout=30).stdout.strip())
    candidates = [
        *(p for root in roots if root for p in sorted(Path(root).glob(f"versions/{minor}*/bin/python{minor}"))),
        Path(f"/usr/bin/python{minor}"),
        Path(f"/usr/local/bin/python{minor}"),
    ]  # fmt: skip
    wanted = tuple(int(part) for part in minor.split("."))
    found = None
    for candidate in candidates:  # as .ci/run does: the last one that works
        if candidate.is_file() and os.access(candidate, os.X_OK):
            probe = f"import sys; assert sys.version_info[:2] == {wanted}"
            if run(str(candidate), "-c", probe, timeout=30).returncode == 0:
                found = candidate
    if found is None:
        pytest.fail(f"no Python {minor} here (looked at {', '.join(map(str, candidates))})")
    return found


def build_pyz(output: Path, *args: str) -> Path:
    built = run(sys.executable, str(ROOT / "tools" / "build_pyz.py"), f"--output={output}", *args)
    assert built.returncode == 0, built.stdout + built.stderr[-3000:]
    return output


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-file build as tools/build_pyz.py makes it by default."""
    return build_pyz(tmp_path_factory.mktemp("pyz") / f"{NAME}.pyz")


@pytest.fixture(scope="module")
def package_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-file build the packages install, with the system Python's #! line."""
    return build_pyz(
        tmp_path_factory.mktemp("package-pyz") / f"{NAME}.pyz",
        f"--interpreter={PACKAGE_INTERPRETER}",
    )


# -- the version --------------------------------------------------------------------------


def test_the_version_is_a_release_everywhere_it_is_written() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__), __version__
    assert __version__ == "2.0.0"
    spec = (ROOT / "packaging" / "rpm" / f"{NAME}.spec").read_text()
    assert re.findall(r"^Version:\s*(\S+)$", spec, re.M) == [__version__]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.findall(r"^## (\S+)", changelog, re.M)[0] == __version__


# -- the wheel ----------------------------------------------------------------------------


def test_wheel_installs_into_a_clean_venv(tmp_path: Path) -> None:
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheels = list(tmp_path.glob("prometheus_cluster_exporter-*.whl"))
    assert [w.name for w in wheels] == [
        f"prometheus_cluster_exporter-{__version__}-py3-none-any.whl"
    ]
    # The license: an SPDX expression in the metadata, and the text itself.
    dist_info = f"prometheus_cluster_exporter-{__version__}.dist-info"
    with zipfile.ZipFile(wheels[0]) as wheel:
        metadata = email.parser.Parser().parsestr(wheel.read(f"{dist_info}/METADATA").decode())
        assert metadata["Version"] == __version__
        assert metadata["License-Expression"] == "GPL-3.0-or-later"
        assert metadata.get_all("License-File") == ["LICENSE"]
        assert metadata["Requires-Python"] == ">=3.9"
        assert wheel.read(f"{dist_info}/licenses/LICENSE").decode() == LICENSE
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", str(venv)).returncode == 0
    installed = run(str(venv / "bin" / "pip"), "install", "-q", str(wheels[0]))
    assert installed.returncode == 0, installed.stderr[-3000:]
    command = venv / "bin" / NAME
    assert_version(str(command))
    assert_demo_once_works(str(command))
    # The deployment files travel with the source, the systemd unit points at the command.
    unit = (DEPLOY / "systemd" / f"{NAME}.service").read_text()
    assert f"ExecStart=/usr/bin/{NAME} $OPTIONS" in unit


# -- the single-file build ----------------------------------------------------------------


@pytest.mark.parametrize("minor", ["3.9", "3.11"])
def test_single_file_build_runs_on_python(pyz: Path, minor: str) -> None:
    """The oldest supported Python and a current one, isolated (-I): only what the file
    carries and the standard library."""
    python = str(find_python(minor))
    assert_version(python, "-I", str(pyz))
    assert_demo_once_works(python, "-I", str(pyz))
    failing = run(python, "-I", str(pyz), *failing_scrape_args(), timeout=60)
    assert failing.returncode == 1, failing.stderr[-2000:]
    assert Scrape(failing.stdout).value("cluster_exporter_scrape_ok") == 0
    # The report command is in the file too: a closed port is one line and status 1.
    reported = run(python, "-I", str(pyz), "report", "--promserver=http://127.0.0.1:1",
                   "--last=1d", timeout=60)  # fmt: skip
    assert reported.returncode == 1, reported.stderr[-2000:]
    assert reported.stderr.startswith("prometheus-cluster-exporter report: error: cannot query")
    assert reported.stderr.count("\n") == 1
    # PyYAML (--web.config.file) works from the file, in pure Python.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import yaml, prometheus_client;"
        "assert yaml.__file__.startswith(sys.argv[1]), yaml.__file__;"
        "assert not yaml.__with_libyaml__;"
        "assert yaml.safe_load('tls_server_config: {cert_file: a}') == {'tls_server_config': {'cert_file': 'a'}}"
    )
    loaded = run(python, "-I", "-c", probe, str(pyz), timeout=60)
    assert loaded.returncode == 0, loaded.stderr[-2000:]


def test_single_file_build_runs_directly(pyz: Path) -> None:
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert os.access(pyz, os.X_OK)
    direct = run(str(pyz), "--version", timeout=60)
    assert direct.returncode == 0 and direct.stdout.strip() == f"{NAME} {__version__}"


def failing_scrape_args() -> List[str]:
    """--once against a query API that refuses connections: scrape_ok 0."""
    return [
        "--once",
        f"--promserver=http://127.0.0.1:{c.free_port()}",
        "--slurm.squeue-path=/bin/true",
        "--getent.path=/bin/true",
        "--timeout=5",
    ]


def test_single_file_build_exits_with_the_status_of_the_exporter(pyz: Path) -> None:
    command = [str(SYSTEM_PYTHON), "-I", str(pyz)]
    assert run(*command, "--version", timeout=60).returncode == 0
    assert run(*command, "--demo", "--once", timeout=60).returncode == 0
    # A failed scrape with --once: 1.
    failing = run(*command, *failing_scrape_args(), timeout=60)
    assert failing.returncode == 1, failing.stderr[-2000:]
    # A port in use: 1, at once, not serving.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = run(*command, "--demo", f"--web.listen-address=127.0.0.1:{port}", timeout=60)
    assert busy.returncode == 1, busy.stderr[-2000:]
    assert "cannot listen on 127.0.0.1" in busy.stderr
    # --check-config with a missing squeue: 2; with the demo cluster's sources: 0.
    missing = run(*command, "--check-config", f"--promserver=http://127.0.0.1:{c.free_port()}",
                  "--slurm.squeue-path=/nonexistent/squeue")  # fmt: skip
    assert missing.returncode == 2, missing.stderr
    assert "--slurm.squeue-path: /nonexistent/squeue not found" in missing.stderr
    fine = run(*command, "--check-config", "--demo")
    assert fine.returncode == 0, fine.stderr


def test_single_file_build_carries_the_license_and_no_compiled_code(pyz: Path) -> None:
    build = load_build_pyz()
    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
        assert archive.read("LICENSE").decode() == LICENSE
        assert "__main__.py" in names
        assert "sys.exit(main())" in archive.read("__main__.py").decode()
        assert not [n for n in names if n.endswith((".so", ".pyd", ".dylib", ".pyc"))]
        versions: Dict[str, str] = {}
        for name in names:
            if name.endswith(".dist-info/METADATA"):
                metadata = email.parser.Parser().parsestr(archive.read(name).decode())
                versions[metadata["Name"].lower().replace("_", "-")] = metadata["Version"]
                # Every bundled distribution admits Python 3.9.
                assert build.admits_oldest(metadata.get("Requires-Python") or ""), name
                licenses = [n for n in names if n.startswith(name.rsplit("/", 1)[0] + "/licenses/")]
                assert licenses, f"no license file bundled for {metadata['Name']}"
    assert set(versions) == {"prometheus-client", "pyyaml"}
    # The pins the build uses are the ones bundled, and the RPM declares them.
    pins = dict(spec.lower().split("==") for spec in build.BUNDLED)
    assert versions == pins
    rpm_spec = (ROOT / "packaging" / "rpm" / f"{NAME}.spec").read_text()
    for name, version in versions.items():
        assert f"Provides:       bundled(python3dist({name})) = {version}" in rpm_spec


def load_build_pyz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_pyz", ROOT / "tools" / "build_pyz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_distribution(staging: Path, name: str, version: str, requires_python: str) -> None:
    dist_info = staging / f"{name}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    header = f"Requires-Python: {requires_python}\n" if requires_python else ""
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{header}\n"
    )


def test_build_refuses_a_dependency_that_drops_python_39(tmp_path: Path) -> None:
    build = load_build_pyz()
    fake_distribution(tmp_path, "prometheus_client", "0.26.0", ">=3.9")
    fake_distribution(tmp_path, "PyYAML", "6.0.4", ">=3.10")
    with pytest.raises(build.BuildError, match=r"PyYAML 6\.0\.4 \(Requires-Python >=3\.10\)"):
        build.check_python_support(tmp_path)
    # Admitted: a lower bound at or below 3.9, no bound at all.
    shutil.rmtree(tmp_path / "PyYAML-6.0.4.dist-info")
    fake_distribution(tmp_path, "PyYAML", "6.0.3", "")
    assert build.check_python_support(tmp_path)["PyYAML"]["version"] == "6.0.3"
    # A pinned distribution that is missing is an error too.
    shutil.rmtree(tmp_path / "PyYAML-6.0.3.dist-info")
    with pytest.raises(build.BuildError, match="not bundled: pyyaml"):
        build.check_python_support(tmp_path)


# -- the RPM ------------------------------------------------------------------------------

RPM_FILES = {
    f"/usr/bin/{NAME}",
    f"/usr/lib/systemd/system/{NAME}.service",
    OPTIONS_FILE,
    f"/usr/lib/sysusers.d/{NAME}.conf",
    f"/usr/share/{NAME}",
    *(f"/usr/share/{NAME}/{name}" for name in SHARED_FILES),
    f"/usr/share/licenses/{NAME}-{__version__}",
    f"/usr/share/licenses/{NAME}-{__version__}/LICENSE",
    f"/usr/share/doc/{NAME}-{__version__}",
    f"/usr/share/doc/{NAME}-{__version__}/README.md",
    f"/usr/share/doc/{NAME}-{__version__}/CHANGELOG.md",
}


def rpm_sources(directory: Path, pyz: Path) -> None:
    """Source0..10 of the spec, flat, as packaging/README.md stages them."""
    directory.mkdir(parents=True)
    shutil.copy(pyz, directory / f"{NAME}.pyz")
    for suffix in ("service", "options", "sysusers"):
        shutil.copy(DEPLOY / "systemd" / f"{NAME}.{suffix}", directory)
    for path in (
        *SHARED_FILES.values(),
        ROOT / "LICENSE",
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
    ):
        shutil.copy(path, directory)


def rpm_query(package: Path, *what: str) -> str:
    result = run("rpm", "-qp", *what, str(package), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_rpm_builds_installs_and_runs(package_pyz: Path, tmp_path: Path) -> None:
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        c.unavailable("rpmbuild is not installed (apt-get install rpm)")
    top = tmp_path / "rpmbuild"
    rpm_sources(top / "SOURCES", package_pyz)
    spec = ROOT / "packaging" / "rpm" / f"{NAME}.spec"
    # --nodeps: the build dependency systemd-rpm-macros is RHEL's; the spec has fallbacks.
    built = run("rpmbuild", "-bb", "--nodeps", "--define", f"_topdir {top}", str(spec))
    assert built.returncode == 0, built.stderr[-3000:]
    package = top / "RPMS" / "noarch" / f"{NAME}-{__version__}-1.noarch.rpm"
    assert package.is_file(), sorted(p.name for p in top.rglob("*.rpm"))

    assert rpm_query(package, "--qf", "%{NAME} %{VERSION} %{ARCH}") == (
        f"{NAME} {__version__} noarch"
    )
    assert "GPL-3.0-or-later" in rpm_query(package, "--qf", "%{LICENSE}")
    assert set(rpm_query(package, "-l").split()) == RPM_FILES
    assert rpm_query(package, "--configfiles").split() == [OPTIONS_FILE]
    assert rpm_query(package, "--licensefiles").split() == [
        f"/usr/share/licenses/{NAME}-{__version__}/LICENSE"
    ]
    requires = rpm_query(package, "--requires").splitlines()
    assert "python3 >= 3.9" in requires
    scripts = rpm_query(package, "--scripts")
    assert "useradd -r -g prometheus" in scripts  # %pre
    assert f"preset {NAME}.service" in scripts  # the fallback of %systemd_post

    root = tmp_path / "root"
    root.mkdir()
    installed = run("rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-i", "--nodeps",
                    "--noscripts", str(package))  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    listed = run("rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-q", NAME)
    assert listed.stdout.strip() == f"{NAME}-{__version__}-1.noarch"
    command = root / "usr" / "bin" / NAME
    assert command.read_bytes().startswith(f"#!{PACKAGE_INTERPRETER}\n".encode())
    assert_version(str(SYSTEM_PYTHON), str(command))
    assert_demo_once_works(str(SYSTEM_PYTHON), str(command))
    assert_version(str(command))  # by its #! line
    share = root / "usr" / "share" / NAME
    for name, source in SHARED_FILES.items():
        assert (share / name).read_bytes() == source.read_bytes(), name
    json.loads((share / "cluster-exporter.json").read_text())
    license_file = root / "usr" / "share" / "licenses" / f"{NAME}-{__version__}" / "LICENSE"
    assert license_file.read_text() == LICENSE
    assert (root / OPTIONS_FILE.lstrip("/")).read_bytes() == (
        DEPLOY / "systemd" / f"{NAME}.options"
    ).read_bytes()

    # Where RHEL's systemd macros are defined, they take the place of the fallbacks.
    rhel = run("rpmbuild", "-bb", "--nodeps", "--define", f"_topdir {top}",
               "--define", "systemd_post() echo RHEL-post %*", str(spec))  # fmt: skip
    assert rhel.returncode == 0, rhel.stderr[-3000:]
    scripts = rpm_query(package, "--scripts")
    assert f"echo RHEL-post {NAME}.service" in scripts and "preset" not in scripts


def test_rpm_build_refuses_a_file_with_another_interpreter(pyz: Path, tmp_path: Path) -> None:
    """The #! line of the installed file must be the system Python: the spec checks it."""
    if shutil.which("rpmbuild") is None:
        c.unavailable("rpmbuild is not installed (apt-get install rpm)")
    top = tmp_path / "rpmbuild"
    rpm_sources(top / "SOURCES", pyz)
    spec = ROOT / "packaging" / "rpm" / f"{NAME}.spec"
    built = run("rpmbuild", "-bb", "--nodeps", "--define", f"_topdir {top}", str(spec))
    assert built.returncode != 0
    assert "--interpreter='/usr/bin/python3 -I'" in built.stderr


# -- the system user ----------------------------------------------------------------------


def test_sysusers_file_creates_the_unit_user(tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None:
        c.unavailable("systemd-sysusers is not installed")
    conf = tmp_path / "usr" / "lib" / "sysusers.d" / f"{NAME}.conf"
    conf.parent.mkdir(parents=True)
    shutil.copy(DEPLOY / "systemd" / f"{NAME}.sysusers", conf)
    (tmp_path / "etc").mkdir()
    created = run("systemd-sysusers", f"--root={tmp_path}", conf.name, timeout=60)
    assert created.returncode == 0, created.stderr
    unit = (DEPLOY / "systemd" / f"{NAME}.service").read_text()
    assert "User=prometheus\n" in unit and "Group=prometheus\n" in unit
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    group = (tmp_path / "etc" / "group").read_text().splitlines()
    [user] = [line.split(":") for line in passwd if line.startswith("prometheus:")]
    [grp] = [line.split(":") for line in group if line.startswith("prometheus:")]
    assert user[3] == grp[2]  # primary group prometheus
    assert int(user[2]) < 1000 and user[6] in ("/usr/sbin/nologin", "/sbin/nologin")


def stub_commands(directory: Path, log: Path, *names: str, status: int = 0) -> None:
    for name in names:
        stub = directory / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexit {status}\n')
        stub.chmod(0o755)


@pytest.mark.parametrize("sysusers", [True, False], ids=["systemd-sysusers", "useradd"])
def test_deb_postinst_creates_the_user(tmp_path: Path, sysusers: bool) -> None:
    """With systemd-sysusers, from the sysusers.d file; without it, with useradd. systemctl
    only where systemd runs (not in a container)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    log.touch()
    stub_commands(bin_dir, log, "systemctl", "groupadd", "useradd")
    stub_commands(bin_dir, log, "getent", status=2)  # no such user or group
    if sysusers:
        stub_commands(bin_dir, log, "systemd-sysusers")
    postinst = ROOT / "packaging" / "deb" / "postinst"
    result = subprocess.run(["/bin/sh", str(postinst), "configure", ""], capture_output=True,
                            text=True, timeout=60, check=False, env={"PATH": str(bin_dir)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    made = [call for call in calls if not call.startswith(("systemctl", "getent"))]
    if sysusers:
        assert made == [f"systemd-sysusers /usr/lib/sysusers.d/{NAME}.conf"]
    else:
        assert made == [
            "groupadd --system prometheus",
            "useradd --system --gid prometheus --home-dir / --shell /usr/sbin/nologin "
            "--comment Prometheus exporters prometheus",
        ]
    systemd_runs = Path("/run/systemd/system").is_dir()
    assert any(call.startswith("systemctl") for call in calls) == systemd_runs


# -- the Debian package -------------------------------------------------------------------

DEB_FILES = {
    f"/usr/bin/{NAME}",
    f"/lib/systemd/system/{NAME}.service",
    OPTIONS_FILE,
    f"/usr/lib/sysusers.d/{NAME}.conf",
    *(f"/usr/share/{NAME}/{name}" for name in SHARED_FILES),
    f"/usr/share/doc/{NAME}/copyright",
    f"/usr/share/doc/{NAME}/README.md.gz",
    f"/usr/share/doc/{NAME}/changelog.gz",
}


@pytest.fixture(scope="module")
def deb(package_pyz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        c.unavailable("dpkg-deb is not installed")
    out = tmp_path_factory.mktemp("deb")
    built = run("sh", str(ROOT / "packaging" / "deb" / "build-deb.sh"), f"--pyz={package_pyz}",
                f"--output-dir={out}")  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    path = Path(built.stdout.strip())
    assert path == out / f"{NAME}_{__version__}-1_all.deb"
    return path


def deb_field(package: Path, field: str) -> str:
    result = run("dpkg-deb", "--field", str(package), field, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_deb_contents(deb: Path) -> None:
    assert deb_field(deb, "Version") == f"{__version__}-1"
    assert deb_field(deb, "Architecture") == "all"
    assert deb_field(deb, "Depends") == "python3 (>= 3.9)"
    listing = run("dpkg-deb", "--contents", str(deb)).stdout.splitlines()
    files = {line.split()[-1].lstrip(".") for line in listing if not line.startswith("d")}
    assert files == DEB_FILES
    assert all(" root/root " in line for line in listing)
    control = run("dpkg-deb", "--info", str(deb)).stdout
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        assert f" {script} " in control, script


@pytest.fixture(scope="module")
def installed_deb(deb: Path) -> Iterator[Path]:
    """The package installed for real with dpkg -i, purged afterwards."""
    if os.environ.get(c.E2E_SWITCH) != "1":
        c.unavailable(f"installs a package on this machine: only with {c.E2E_SWITCH}=1")
    if os.geteuid() != 0 or shutil.which("dpkg") is None:
        c.unavailable("dpkg -i needs root and dpkg")
    if run("dpkg", "-s", NAME).returncode == 0:
        c.unavailable(f"{NAME} is installed on this machine already; not touching it")
    clobbered = [path for path in DEB_FILES if os.path.lexists(path)]
    if clobbered:
        c.unavailable(f"would overwrite files no package owns: {', '.join(sorted(clobbered))}")
    had_user = user_exists("prometheus")
    try:
        installed = run("dpkg", "-i", str(deb))
        assert installed.returncode == 0, installed.stdout + installed.stderr
        yield Path("/usr/bin") / NAME
    finally:
        purged = run("dpkg", "--purge", NAME)
        if not had_user and user_exists("prometheus"):
            run("userdel", "prometheus")
            run("groupdel", "prometheus")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    left = [path for path in DEB_FILES if os.path.lexists(path)]
    assert not left, left
    # `systemctl enable` of the test below: the purge must have disabled it.
    link = Path(f"/etc/systemd/system/multi-user.target.wants/{NAME}.service")
    was_enabled = os.path.lexists(link)
    if was_enabled:
        link.unlink()
    assert not was_enabled, f"{link} left behind"


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def options_for_a_test_run(options_file: Path) -> List[str]:
    """The OPTIONS of the installed file, with --demo and 127.0.0.1 in place of the query
    API (there is no Prometheus here; --demo and --promserver exclude each other)."""
    match = re.search(r"^OPTIONS=(.*)$", options_file.read_text(), re.M)
    assert match is not None, "no OPTIONS= line"
    # As systemd reads it: quotes removed, then $OPTIONS split at whitespace.
    options = " ".join(shlex.split(match.group(1))).split()
    assert any(re.match(r"--?promserver(=|$)", o) for o in options), options
    kept: List[str] = []
    skip_value = False
    for option in options:
        if skip_value:
            skip_value = False
        elif re.match(r"--?promserver=", option):
            continue
        elif re.fullmatch(r"--?promserver", option):
            skip_value = True
        else:
            kept.append(option)
    return [*kept, "--demo", "--web.listen-address=127.0.0.1:0"]


def test_installed_deb_runs_with_its_options(installed_deb: Path, tmp_path: Path) -> None:
    status = run("dpkg-query", "-W", "-f=${Status} ${Version} ${Conffiles}", NAME).stdout
    assert status.startswith(f"install ok installed {__version__}-1"), status
    assert OPTIONS_FILE in status  # a conffile
    assert installed_deb.read_bytes().startswith(f"#!{PACKAGE_INTERPRETER}\n".encode())
    assert_version(str(installed_deb))
    copyright_text = Path(f"/usr/share/doc/{NAME}/copyright").read_text()
    assert "License: GPL-3.0+" in copyright_text
    assert "/usr/share/common-licenses/GPL-3" in copyright_text
    assert gzip.decompress(Path(f"/usr/share/doc/{NAME}/changelog.gz").read_bytes()).startswith(
        b"# Changelog"
    )
    assert user_exists("prometheus")  # postinst: systemd-sysusers or useradd
    if shutil.which("systemd-analyze"):
        unit = f"/lib/systemd/system/{NAME}.service"
        verified = run("systemd-analyze", "verify", unit, timeout=60)
        assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr

    # The installed command with the installed options, as the unit's user.
    argv = [str(installed_deb), *options_for_a_test_run(Path(OPTIONS_FILE))]
    if shutil.which("setpriv"):
        user = pwd.getpwnam("prometheus")
        argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
                "--no-new-privs", *argv]  # fmt: skip
    proc = c.Process(argv, tmp_path / "installed.log")
    try:
        url = proc.wait_for_log(r"Listening on (http://127\.0\.0\.1:\d+/metrics)").group(1)
        page = c.http_get(url).decode()
        assert Scrape(page).value("cluster_exporter_scrape_ok") == 1
        assert build_info_versions(page) == {__version__}
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.log()


def test_installed_deb_keeps_a_changed_options_file_and_disables_on_purge(
    installed_deb: Path, deb: Path
) -> None:
    options = Path(OPTIONS_FILE)
    original = options.read_text()
    options.write_text(original + "# changed by the administrator\n")
    again = run("dpkg", "-i", str(deb))  # a reinstall: postinst configure with a version
    assert again.returncode == 0, again.stdout + again.stderr
    assert options.read_text().endswith("# changed by the administrator\n")
    options.write_text(original)
    if shutil.which("systemctl"):
        # Enabled by the administrator; the purge (prerm) must remove the symlink
        # (checked in the fixture's teardown).
        enabled = run("systemctl", "--no-reload", "enable", f"{NAME}.service", timeout=60)
        assert enabled.returncode == 0, enabled.stderr
