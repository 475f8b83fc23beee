#!/usr/bin/env python3
"""Build a single-file, self-contained exporter: dist/prometheus-cluster-exporter.pyz.

It runs with nothing but a system Python 3.9+ (``python3 prometheus-cluster-exporter.pyz``
or directly, it has a ``#!/usr/bin/env python3`` line), for air-gapped hosts where pip is
not an option. It carries the exporter, the LICENSE and its pure-Python dependencies
(prometheus-client, PyYAML without its C part) at the versions pinned below, fetched as
wheels for CPython 3.9, the oldest supported version, whatever Python runs this script.
The build fails if a bundled distribution does not support Python 3.9.

Compiled extras are left out: JSON is decoded with the standard library instead of
msgspec, and basic auth in --web.config.file (which needs bcrypt) is refused with a clear
message; TLS works.

    python tools/build_pyz.py [--output PATH] [--interpreter CMD] [--wheels DIR]

The dependencies come from the package index pip is configured for; ``--wheels DIR``
takes them from a directory of wheels instead (no network), made on a connected machine
with ``python tools/build_pyz.py --download DIR``.
"""

from __future__ import annotations

import argparse
import email.parser
import re
import shutil
import subprocess
import sys
import tempfile
import zipapp
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "prometheus_cluster_exporter"
#: The oldest Python the exporter supports (README, pyproject's requires-python).
OLDEST_PYTHON = "3.9"
#: Bundled dependencies, pinned: newer releases may drop Python versions we support.
BUNDLED = ("prometheus-client==0.26.0", "PyYAML==6.0.3")
#: The wheel pip picks for these; only its pure-Python part is kept, so the file that
#: results runs on any platform.
WHEEL_PLATFORM = "manylinux2014_x86_64"
COMPILED = (".so", ".pyd", ".dylib")
#: Left out: the stub package of PyYAML's C extension (yaml falls back to pure Python).
LEFT_OUT = ("_yaml", "bin")

MAIN = '''\
"""Entry point of the single-file build: the exit status is that of main()."""

import sys

if sys.version_info < (3, 9):
    sys.exit("prometheus-cluster-exporter needs Python 3.9 or newer, not %d.%d" % sys.version_info[:2])

from prometheus_cluster_exporter.cli import main

sys.exit(main())
'''


class BuildError(Exception):
    pass


def pip_target_args() -> List[str]:
    """pip options selecting wheels for CPython 3.9 whatever Python runs the build."""
    short = OLDEST_PYTHON.replace(".", "")
    return [
        "--only-binary=:all:",
        "--no-deps",
        f"--python-version={OLDEST_PYTHON}",
        "--implementation=cp",
        f"--abi=cp{short}",
        f"--platform={WHEEL_PLATFORM}",
    ]


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise BuildError(f"{' '.join(command)} failed with exit code {result.returncode}")


def install_dependencies(staging: Path, wheels: Optional[Path]) -> None:
    source = ["--no-index", f"--find-links={wheels}"] if wheels else []
    target = ["--no-compile", f"--target={staging}"]
    pip("install", "-q", *target, *source, *pip_target_args(), *BUNDLED)


def admits_oldest(requires_python: str) -> bool:
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # pip, which the build needs anyway, carries its own copy
        from pip._vendor.packaging.specifiers import SpecifierSet  # type: ignore[assignment]
    return SpecifierSet(requires_python).contains(OLDEST_PYTHON, prereleases=True)


def bundled_distributions(staging: Path) -> Dict[str, Dict[str, str]]:
    """name -> {version, requires_python} for every .dist-info in the staging tree."""
    found: Dict[str, Dict[str, str]] = {}
    for metadata in sorted(staging.glob("*.dist-info/METADATA")):
        headers = email.parser.Parser().parsestr(metadata.read_text(encoding="utf-8"), True)
        found[headers["Name"]] = {
            "version": headers["Version"],
            "requires_python": headers.get("Requires-Python") or "",
        }
    return found


def exporter_requires_python() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^requires-python\s*=\s*"([^"]*)"', text, re.M)
    if match is None:
        raise BuildError("pyproject.toml has no requires-python")
    return match.group(1)


def check_python_support(staging: Path) -> Dict[str, Dict[str, str]]:
    """Every bundled distribution must admit the oldest supported Python, else no build."""
    found = bundled_distributions(staging)
    wanted = {re.split(r"[=<>!~ ;]", spec, maxsplit=1)[0].lower().replace("_", "-")
              for spec in BUNDLED}  # fmt: skip
    have = {name.lower().replace("_", "-") for name in found}
    if wanted - have:
        raise BuildError(f"not bundled: {', '.join(sorted(wanted - have))}")
    found[PACKAGE.replace("_", "-")] = {
        "version": exporter_version(),
        "requires_python": exporter_requires_python(),
    }
    refused = [
        f"{name} {info['version']} (Requires-Python {info['requires_python']})"
        for name, info in found.items()
        if info["requires_python"] and not admits_oldest(info["requires_python"])
    ]
    if refused:
        raise BuildError(
            f"bundled distributions that do not support Python {OLDEST_PYTHON}: "
            + "; ".join(refused)
        )
    return found


def exporter_version() -> str:
    text = (ROOT / "src" / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if match is None:
        raise BuildError(f"no __version__ in src/{PACKAGE}/__init__.py")
    return match.group(1)


def strip_compiled(staging: Path) -> None:
    for name in LEFT_OUT:
        shutil.rmtree(staging / name, ignore_errors=True)
    for path in sorted(staging.rglob("*"), reverse=True):
        if path.is_dir() and path.name == "__pycache__":
            shutil.rmtree(path)
        elif path.is_file() and path.name.endswith(COMPILED):
            path.unlink()


def build(
    output: Path, interpreter: str = "/usr/bin/env python3", wheels: Optional[Path] = None
) -> Dict[str, Dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        install_dependencies(staging, wheels)
        shutil.copytree(ROOT / "src" / PACKAGE, staging / PACKAGE)
        strip_compiled(staging)
        bundled = check_python_support(staging)
        shutil.copy(ROOT / "LICENSE", staging / "LICENSE")
        # zipapp's own __main__ (main="module:function") drops the function's return
        # value: every run would exit 0. This one passes it to sys.exit.
        (staging / "__main__.py").write_text(MAIN, encoding="utf-8")
        output.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(staging, target=output, interpreter=interpreter, compressed=True)
    output.chmod(0o755)
    return bundled


def download(directory: Path) -> None:
    """Fetch the bundled wheels for a later --wheels build on a machine without network."""
    pip("download", "-q", f"--dest={directory}", *pip_target_args(), *BUNDLED)


def main() -> int:
    parser = argparse.ArgumentParser(description="Build the single-file exporter.")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "dist" / "prometheus-cluster-exporter.pyz"
    )
    parser.add_argument(
        "--interpreter",
        default="/usr/bin/env python3",
        help="the #! line's command (packages use /usr/bin/python3)",
    )
    parser.add_argument(
        "--wheels", type=Path, help="take the dependencies from this directory, no index"
    )
    parser.add_argument(
        "--download", type=Path, metavar="DIR", help="only download the dependencies to DIR"
    )
    args = parser.parse_args()
    try:
        if args.download:
            download(args.download)
            print(f"downloaded {', '.join(BUNDLED)} to {args.download}")
            return 0
        bundled = build(args.output, args.interpreter, args.wheels)
    except BuildError as exc:
        print(f"build_pyz: error: {exc}", file=sys.stderr)
        return 1
    size = args.output.stat().st_size / 1024
    print(f"built {args.output} ({size:.0f} KiB)")
    for name, info in bundled.items():
        print(f"  {name} {info['version']} (Requires-Python {info['requires_python'] or 'any'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
