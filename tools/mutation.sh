#!/usr/bin/env bash
# Mutation-testing pass with mutmut 3 over attribution.py, jobid.py, cache.py and
# collector.py, using the fast in-process unit tests; configuration is the
# [tool.mutmut] section of pyproject.toml. Work happens in mutants/ (git-ignored).
# A manual tool for developers: it is NOT part of CI (a full pass takes 15-30 minutes on 2 cores).
#
#   tools/mutation.sh            # full pass, then list the survivors
#   tools/mutation.sh 'prometheus_cluster_exporter.cache*'   # only matching mutants
#   FRESH=1 tools/mutation.sh    # discard mutants/ (cached results) first
set -euo pipefail

cd "$(dirname "$0")/.."
venv=${VENV:-.venv}

if ! "$venv/bin/python" -c 'import mutmut' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet 'mutmut>=3,<4'
fi

if [[ ${FRESH:-0} == 1 ]]; then
    rm -rf mutants
fi

start=$(date +%s)
"$venv/bin/mutmut" run "$@"
echo "mutation run took $(($(date +%s) - start)) s"

# Per module: how many mutants, and how each ended.
"$venv/bin/mutmut" results --all true | "$venv/bin/python" -c '
import collections, re, sys
counts = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    m = re.match(r"\s*prometheus_cluster_exporter\.(\w+)\.\S+: (.+)$", line)
    if m:
        counts[m[1]][m[2].strip()] += 1
for module, c in sorted(counts.items()):
    print(f"{module}: {sum(c.values())} mutants, " + ", ".join(f"{n} {s}" for s, n in sorted(c.items())))
'

# The mutants that were not killed (survived, timeout, ...); 'mutmut show NAME' gives the diff.
"$venv/bin/mutmut" results
