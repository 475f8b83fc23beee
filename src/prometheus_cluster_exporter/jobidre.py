"""The jobid grammar (``jobid``) as RE2 regular expressions, for PromQL matchers and
``label_replace``: how join mode's rules tell job ids from process ids inside the TSDB.

Each ``--lustre.jobid-format`` that can name an owner becomes two ``Form``s, one for ids
quoted at both ends (Lustre 2.16 quotes some; the quotes are not part of the id) and one
for all other ids. A job form (it has ``%j``) captures the job id, a process form (``%e``
and ``%u``, no ``%j``) the executable and the uid. Numbers are captured without leading
zeros, as the exporter reads them (``0*([0-9]+)``). Forms are tried in order, as in
direct mode: the ids of a form are those it matches that no earlier form of the same
quoting matches. For ``%j`` then ``%e.%u``::

    job:  "0*([0-9]+)"  and  0*([0-9]+)                  (Slurm job $1)
    proc: "(.+)\\.0*([0-9]+)"  and  (.+)\\.0*([0-9]+)      (executable $1, uid $2)

What the regexes cannot say exactly (documented in the README's "Large sites"): an id of
31 or more characters is unparsable (``LONG``, counted in characters), where direct mode
counts bytes (an ``\\xHH`` escape as one) and still reads an id of exactly 31 bytes whose
cut last field is a host or a name; RE2's ``.`` does not match a newline.

Pure: no I/O, no globals beyond constants. Imports ``jobid`` and ``promql``.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence

from prometheus_cluster_exporter.jobid import FIELD_PATTERNS, tokenize
from prometheus_cluster_exporter.promql import quote

#: An id of 31 or more characters, not counting quotes at both ends.
LONG = '".{31,}"|[^"].{30,}|".{29,}[^"]'
#: An id quoted at both ends.
QUOTED = '".*"'
#: The characters RE2 gives a meaning; any other stands for itself.
_SPECIAL = frozenset("\\.+*?()|[]{}^$")
_NUMBER = "0*([0-9]+)"


def escape(text: str) -> str:
    """``text`` as an RE2 literal."""
    return "".join("\\" + char if char in _SPECIAL else char for char in text)


class Form(NamedTuple):
    """One jobid form as a regex, for quoted ids or for the others. A job form has
    ``job`` (its group); a process form has ``name`` and ``uid`` (their groups, ``$n``)."""

    text: str
    regex: str
    quoted: bool
    job: Optional[str] = None
    name: Optional[str] = None
    uid: Optional[str] = None

    @property
    def is_job(self) -> bool:
        return self.job is not None


def form_of(fmt: str, quoted: bool = False) -> Optional[Form]:
    """The regex of one format (for ids quoted at both ends, or for the others), or None
    for a format that never names an owner (no ``%j``, and not both ``%e`` and ``%u``)."""
    tokens = tokenize(fmt)
    codes = {code for is_field, code in tokens if is_field}
    is_job = "j" in codes
    if not is_job and not {"e", "u"} <= codes:
        return None
    captured = {"j"} if is_job else {"e", "u"}
    groups: Dict[str, str] = {}
    parts = []
    for is_field, value in tokens:
        if not is_field:
            parts.append(escape(value))
        elif value in captured and value not in groups:
            groups[value] = f"${len(groups) + 1}"
            parts.append("(.+)" if value == "e" else _NUMBER)
        else:
            parts.append(f"(?:{FIELD_PATTERNS[value]})")
    regex = "".join(parts)
    regex = f'"{regex}"' if quoted else regex
    if is_job:
        return Form(fmt, regex, quoted, job=groups["j"])
    return Form(fmt, regex, quoted, name=groups["e"], uid=groups["u"])


def forms_of(formats: Sequence[str]) -> List[Form]:
    """The forms that can name an owner, in the order they are tried, each for quoted
    ids and for the others."""
    forms = (form_of(fmt, quoted) for fmt in formats for quoted in (True, False))
    return [form for form in forms if form is not None]


def any_of(forms: Sequence[Form]) -> str:
    """One regex matching what any of ``forms`` matches (never matches if none)."""
    if not forms:
        return "[^\\s\\S]"  # matches no string
    return "|".join(f"(?:{form.regex})" for form in forms)


def matchers(label: str, forms: Sequence[Form], index: int) -> str:
    """PromQL matchers selecting the ids of ``forms[index]``: of its quoting, it
    matches, no earlier form of that quoting does, and the id is not too long to trust."""
    form = forms[index]
    parts = [f"{label}=~{quote(form.regex)}"]
    earlier = [f for f in forms[:index] if f.quoted == form.quoted]
    if earlier:
        parts.append(f"{label}!~{quote(any_of(earlier))}")
    if not form.quoted:
        parts.append(f"{label}!~{quote(QUOTED)}")
    parts.append(f"{label}!~{quote(LONG)}")
    return ", ".join(parts)


def unparsable_matchers(label: str, forms: Sequence[Form]) -> List[str]:
    """Matchers of the ids no form explains, as disjoint sets: too long; quoted and no
    quoted form matches; not quoted and no other form matches."""
    short = f"{label}!~{quote(LONG)}"
    quoted = any_of([f for f in forms if f.quoted])
    others = any_of([f for f in forms if not f.quoted])
    return [
        f"{label}=~{quote(LONG)}",
        f"{label}=~{quote(QUOTED)}, {label}!~{quote(quoted)}, {short}",
        f"{label}!~{quote(QUOTED)}, {label}!~{quote(others)}, {short}",
    ]
