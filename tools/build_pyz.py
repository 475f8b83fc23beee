#!/usr/bin/env python3
"""Build a single-file, self-contained exporter: dist/prometheus-cluster-exporter.pyz.

It runs with nothing but a system Python 3.9+ (``python3 prometheus-cluster-exporter.pyz``
or directly, it has a ``#!/usr/bin/env python3`` line), for air-gapped hosts where pip is
not an option. It carries the exporter and its pure-Python dependencies
(prometheus-client, PyYAML without its C part) taken from the environment this
script runs in. Compiled extras are left out: JSON is decoded with the standard library
instead of msgspec, and basic auth in --web.config.file (which needs bcrypt) is refused
with a clear message; TLS works.

    python tools/build_pyz.py [--output PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("prometheus_cluster_exporter", "prometheus_client", "yaml")
COMPILED = (".so", ".pyd", ".dylib")


def package_dir(name: str) -> Path:
    if name == "prometheus_cluster_exporter":
        return ROOT / "src" / name
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"build_pyz: {name} is not installed in this environment")
    return Path(next(iter(spec.submodule_search_locations)))


def build(output: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        for name in PACKAGES:
            shutil.copytree(
                package_dir(name),
                staging / name,
                ignore=lambda _dir, names: [
                    n for n in names if n == "__pycache__" or n.endswith(COMPILED)
                ],
            )
        output.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(
            staging,
            target=output,
            interpreter="/usr/bin/env python3",
            main="prometheus_cluster_exporter.cli:main",
            compressed=True,
        )
    output.chmod(0o755)
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description="Build the single-file exporter.")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "dist" / "prometheus-cluster-exporter.pyz"
    )
    args = parser.parse_args()
    path = build(args.output)
    print(f"built {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
