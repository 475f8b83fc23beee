"""Allow ``python -m prometheus_cluster_exporter``."""

from prometheus_cluster_exporter.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
