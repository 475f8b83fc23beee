#!/bin/sh
# Build the Debian package of prometheus-cluster-exporter (Architecture: all) from a
# staged tree with dpkg-deb; no debhelper needed.
#
#   packaging/deb/build-deb.sh [--pyz FILE] [--output-dir DIR]
#
# --pyz: the single-file build to install as /usr/bin/prometheus-cluster-exporter, made
# with tools/build_pyz.py --interpreter="/usr/bin/python3 -I"; without it, one is built
# here (with $PYTHON, default python3, which needs pip and access to the package index).
# The package is written to DIR (default dist/) and its path printed.
# DEB_MAINTAINER sets the Maintainer field.
set -eu
umask 022

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
name=prometheus-cluster-exporter
interpreter="/usr/bin/python3 -I"
pyz=""
outdir="$root/dist"

while [ $# -gt 0 ]; do
    case "$1" in
        --pyz) pyz=$2; shift 2 ;;
        --pyz=*) pyz=${1#--pyz=}; shift ;;
        --output-dir) outdir=$2; shift 2 ;;
        --output-dir=*) outdir=${1#--output-dir=}; shift ;;
        *) echo "usage: $0 [--pyz FILE] [--output-dir DIR]" >&2; exit 2 ;;
    esac
done

upstream=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/src/prometheus_cluster_exporter/__init__.py")
if [ -z "$upstream" ]; then
    echo "$0: no __version__ in src/prometheus_cluster_exporter/__init__.py" >&2
    exit 1
fi
# 2.1.0.dev0 -> 2.1.0~dev0, 2.1.0rc1 -> 2.1.0~rc1: pre-releases sort before the release.
version="$(echo "$upstream" | sed -E 's/\.?(dev|a|b|rc)([0-9]*)$/~\1\2/')-1"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
if [ -z "$pyz" ]; then
    pyz="$stage/$name.pyz"
    "${PYTHON:-python3}" "$root/tools/build_pyz.py" --interpreter="$interpreter" --output="$pyz" >&2
fi
if [ "$(head -n 1 "$pyz")" != "#!$interpreter" ]; then
    echo "$0: $pyz: build it with tools/build_pyz.py --interpreter='$interpreter'" >&2
    exit 1
fi

tree="$stage/tree"
doc="$tree/usr/share/doc/$name"
install -D -m 0755 "$pyz" "$tree/usr/bin/$name"
install -D -m 0644 "$root/deploy/systemd/$name.service" "$tree/lib/systemd/system/$name.service"
install -D -m 0644 "$root/deploy/systemd/$name.options" "$tree/etc/default/$name.options"
install -D -m 0644 "$root/deploy/systemd/$name.sysusers" "$tree/usr/lib/sysusers.d/$name.conf"
install -d -m 0755 "$tree/usr/share/$name" "$doc"
install -m 0644 "$root/deploy/grafana/cluster-exporter.json" \
    "$root/deploy/prometheus/rules.yml" "$root/deploy/prometheus/join-rules.yml" \
    "$root/deploy/prometheus/scrape-config.yml" \
    "$tree/usr/share/$name/"
install -m 0644 "$here/copyright" "$doc/copyright"
gzip -9n < "$root/README.md" > "$doc/README.md.gz"
gzip -9n < "$root/CHANGELOG.md" > "$doc/changelog.gz"
chmod 0644 "$doc"/*.gz

install -d -m 0755 "$tree/DEBIAN"
installed_size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
sed -e "s/@VERSION@/$version/" \
    -e "s/@INSTALLED_SIZE@/$installed_size/" \
    -e "s|@MAINTAINER@|${DEB_MAINTAINER:-prometheus-cluster-exporter maintainers <root@localhost>}|" \
    "$here/control.in" > "$tree/DEBIAN/control"
echo "/etc/default/$name.options" > "$tree/DEBIAN/conffiles"
chmod 0644 "$tree/DEBIAN/control" "$tree/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$tree/DEBIAN/$script"
done

mkdir -p "$outdir"
deb="$outdir/${name}_${version}_all.deb"
dpkg-deb --build --root-owner-group "$tree" "$deb" >&2
echo "$deb"
