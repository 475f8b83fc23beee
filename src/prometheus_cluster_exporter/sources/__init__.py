"""Sources: each module wraps one external system and returns plain records.

- ``prometheus`` (with ``promhttp``, ``promvector``): Lustre rates from the query API;
- ``slurm``: jobs from squeue and sacct;
- ``identity``: users and groups from getent;
- ``demo``: a synthetic cluster behind the same interfaces, for ``--demo``;
- ``command``, ``lines``: running a command within the deadline, parsing its lines.

The interfaces they implement and the records they return live in ``records``. A source
module may import ``records``, ``errors``, ``pacing``, ``cache``, ``jsonutil``,
``upstream``, ``credentials`` and other modules of this package; never the collector,
attribution or anything that renders.
"""
