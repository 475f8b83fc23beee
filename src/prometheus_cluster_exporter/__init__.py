"""Prometheus exporter for Lustre IO per Slurm account/user and per process name/user/group."""

__version__ = "2.0.0"
