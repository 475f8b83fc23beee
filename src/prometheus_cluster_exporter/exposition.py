"""A fast renderer of the Prometheus text format (0.0.4) for the exporter's own metrics.

prometheus-client builds a Sample object per series and formats it label by label;
with 100,000+ series per scrape that dominated the scrape. This renderer writes the
same bytes straight from the attribution tables: label names sorted, label values
escaped as prometheus-client escapes them (with a cache that outlives the scrape, since
accounts, users and process names change slowly), values formatted by
prometheus-client's own float formatter. The text is made and encoded a few thousand
lines at a time, and ``render_gzip`` compresses each piece as it is made, so the whole
page is never held as text. The tests check the output byte for byte against
prometheus-client's generate_latest.
"""

from __future__ import annotations

import re
import threading
import zlib
from itertools import islice, zip_longest
from operator import itemgetter
from queue import Queue
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    cast,
)

from prometheus_client.utils import floatToGoString

from prometheus_cluster_exporter.metrics import COUNTER, GAUGE, OwnerRows, RowFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
T = TypeVar("T")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: The ``# TYPE`` the exporter's families may have.
TYPES = (GAUGE, COUNTER)


def format_value(value: float) -> str:
    """Shortest text that reads back as the same float (Go and Python agree on it).

    prometheus-client writes large values Go-style (``1.048576e+06``); ``repr`` writes
    ``1048576.0``. Both parse to the same float; ``repr`` is several times cheaper.
    Infinities and NaN take the format's spelling.
    """
    if value - value == 0:  # finite
        return repr(value)
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


#: Escaped label values kept between scrapes, at most (then the cache starts afresh).
ESCAPES_KEPT = 1 << 20
#: Series made into text at a time.
LINES_AT_ONCE = 8192


class _EscapeCache(Dict[str, str]):
    """label value -> escaped value; filled on first use (``cache[value]``)."""

    def __missing__(self, value: str) -> str:
        escaped = self[value] = escape_label_value(value)
        return escaped


_escapes = _EscapeCache()


LineRenderer = Callable[[Iterable[Tuple[Tuple[str, ...], float]], Dict[str, str]], List[str]]
_renderers: Dict[Tuple[str, Tuple[str, ...], bool], LineRenderer] = {}


def _line_renderer(name: str, labels: Tuple[str, ...], finite: bool) -> LineRenderer:
    """A list comprehension specialised to one metric's name and labels.

    A generic loop (build a tuple of escaped values, %-format a template) costs three
    times as much per series as one f-string with the label names written in; so the
    f-string is generated once per metric. ``name`` and ``labels`` are metric and label
    names (checked against the Prometheus name grammar), never data. With ``finite``
    values are written with ``repr`` directly (the shortest exact text); otherwise
    through ``format_value`` for the format's ``+Inf``/``NaN``.
    """
    renderer = _renderers.get((name, labels, finite))
    if renderer is not None:
        return renderer
    if not _METRIC_NAME.fullmatch(name) or not all(_LABEL_NAME.fullmatch(n) for n in labels):
        raise ValueError(f"invalid metric or label name in {name}{labels}")
    order = sorted(range(len(labels)), key=labels.__getitem__)
    label_text = ",".join(f'{labels[i]}="{{e[k[{i}]]}}"' for i in order)
    braces = f"{{{{{label_text}}}}}" if labels else ""
    value = "{v!r}" if finite else "{f(v)}"
    source = f"lambda rows, e: [f'{name}{braces} {value}\\n' for k, v in rows]"
    renderer = cast(LineRenderer, eval(source, {"f": format_value}))  # noqa: S307
    _renderers[(name, labels, finite)] = renderer
    return renderer


OwnerRenderer = Callable[..., List[str]]
_owner_renderers: Dict[Tuple[str, Tuple[str, ...], int, bool], OwnerRenderer] = {}


def _owner_renderer(name: str, labels: Tuple[str, ...], owned: int, finite: bool) -> OwnerRenderer:
    """Like ``_line_renderer``, for ``metrics.OwnerRows``: the first ``owned`` labels are
    the owner's, read from lists of escaped values by owner number (``E``), the others
    are the column's, the same on every line (``X``)."""
    key = (name, labels, owned, finite)
    renderer = _owner_renderers.get(key)
    if renderer is not None:
        return renderer
    _line_renderer(name, labels, finite)  # checks the names
    order = sorted(range(len(labels)), key=labels.__getitem__)
    refs = [f"E{i}[n]" if i < owned else f"X{i - owned}" for i in range(len(labels))]
    label_text = ",".join(f'{labels[i]}="{{{refs[i]}}}"' for i in order)
    value = "{v!r}" if finite else "{f(v)}"
    names = ", ".join(refs[i].split("[")[0] for i in range(len(labels)))
    source = (
        "def render(items, kinds, kind, E, X):\n"
        f"    {names}, = (*E, *X)\n"
        f"    return [f'{name}{{{{{label_text}}}}} {value}\\n' "
        "for n, v in items if kinds[n] == kind]\n"
    )
    namespace: Dict[str, Any] = {"f": format_value}
    exec(source, namespace)  # noqa: S102 - metric and label names only, checked above
    renderer = _owner_renderers[key] = cast(OwnerRenderer, namespace["render"])
    return renderer


def _escaped_by_position(
    labels_of: Sequence[Tuple[str, ...]], escape: _EscapeCache
) -> List[Sequence[str]]:
    """The owners' label values by position ("" past an owner's last), escaped: the
    transposing and the check for anything to escape are done by C loops, and a position
    with nothing to escape is used as it is."""
    out: List[Sequence[str]] = []
    for values in zip_longest(*labels_of, fillvalue=""):
        joined = "\x00".join(values)
        if "\\" in joined or '"' in joined or "\n" in joined:
            out.append(tuple(map(escape.__getitem__, values)))
        else:
            out.append(values)
    return out


def _owner_texts(
    name: str,
    labels: Tuple[str, ...],
    rows: OwnerRows,
    escape: _EscapeCache,
    escaped: Dict[int, List[Sequence[str]]],
) -> Iterator[str]:
    """The lines of OwnerRows, a column and LINES_AT_ONCE series at a time. ``escaped``
    keeps, for the page, the escaped label values of every owner, by position."""
    total = sum(sum(values.values()) for values in rows.sums.values())
    by_position = escaped.get(id(rows.labels_of))
    if by_position is None:
        by_position = escaped[id(rows.labels_of)] = _escaped_by_position(rows.labels_of, escape)
    for extra, values in rows.sums.items():
        owned = len(labels) - len(extra)
        lines = _owner_renderer(name, labels, owned, total - total == 0)
        fixed = [escape[x] for x in extra]
        columns = by_position[:owned]
        if len(columns) < owned:  # no owner has that many labels: no row of this kind
            columns += [("",) * len(rows.labels_of)] * (owned - len(columns))
        items = iter(values.items())
        for _ in range(0, len(values), LINES_AT_ONCE):
            part = islice(items, LINES_AT_ONCE)
            yield "".join(lines(part, rows.kinds, rows.kind, columns, fixed))


def _parts(items: Iterable[T]) -> Iterator[List[T]]:
    """``items`` in lists of at most LINES_AT_ONCE."""
    rest = iter(items)
    while True:
        part = list(islice(rest, LINES_AT_ONCE))
        if not part:
            return
        yield part


def _texts(families: Iterable[RowFamily]) -> Iterator[str]:
    """The page in pieces of at most LINES_AT_ONCE series."""
    escape = _escapes
    if len(escape) > ESCAPES_KEPT:
        escape.clear()
    escaped: Dict[int, List[Sequence[str]]] = {}
    for family in families:
        name, labels = family.spec.name, family.spec.labels
        if family.spec.type not in TYPES:
            raise ValueError(f"invalid metric type {family.spec.type!r} of {name}")
        help_text = family.spec.help.replace("\\", r"\\").replace("\n", r"\n")
        yield f"# HELP {name} {help_text}\n# TYPE {name} {family.spec.type}\n"
        if isinstance(family.rows, OwnerRows):
            yield from _owner_texts(name, labels, family.rows, escape, escaped)
            continue
        # If the sum is finite, every value is: no NaN or infinity to spell specially.
        total = sum(map(itemgetter(1), family.rows))
        lines = _line_renderer(name, labels, total - total == 0)
        for part in _parts(family.rows):
            yield "".join(lines(part, escape))


def render(families: Iterable[RowFamily]) -> bytes:
    """The text format of the families, in their order: the one way the exporter's
    metrics reach a client (the HTTP page and ``--once``)."""
    return b"".join(text.encode("utf-8") for text in _texts(families))


def render_gzip(families: Iterable[RowFamily], tail: bytes = b"") -> bytes:
    """``render(families) + tail``, gzip-compressed (level 1) piece by piece.

    The pieces are compressed on a thread of their own as they are made: zlib lets go of
    the interpreter while it works, so compressing overlaps with writing the text."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out: List[bytes] = []
    failed: List[BaseException] = []
    pending: Queue[Optional[bytes]] = Queue(8)

    def compress() -> None:
        while True:
            data = pending.get()
            if data is None:
                return
            if not failed:
                try:
                    out.append(packer.compress(data))
                except BaseException as exc:  # handed to the page
                    failed.append(exc)

    worker = threading.Thread(target=compress, name="gzip", daemon=True)
    worker.start()
    try:
        for text in _texts(families):
            pending.put(text.encode("utf-8"))
        pending.put(tail)
    finally:
        pending.put(None)
        worker.join()
    if failed:
        raise failed[0]
    out.append(packer.flush())
    return b"".join(out)
