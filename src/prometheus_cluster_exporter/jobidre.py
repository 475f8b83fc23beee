"""The jobid grammar (``jobid``) as RE2 regular expressions, for PromQL matchers and
``label_replace``: how join mode's rules tell job ids from process ids inside the TSDB.

Each ``--lustre.jobid-format`` that can name an owner becomes one ``Form``: a job form
(it has ``%j``) captures the job id, a process form (``%e`` and ``%u``, no ``%j``) the
executable and the uid. Numbers are captured without leading zeros, as the exporter reads
them (``0*([0-9]+)``). Forms are tried in order, as in direct mode: the ids of a form are
those it matches that no earlier form matches. For ``%j`` then ``%e.%u``::

    job:  "?0*([0-9]+)"?                 (Slurm job $1)
    proc: "?(.+)\\.0*([0-9]+)"?          (executable $1, uid $2)

What the regexes cannot say exactly (documented in the README's "Large sites"):

- an id of 31 or more characters is unparsable (``LONG``), where direct mode still reads
  an id of exactly 31 bytes whose cut last field is a host or a name;
- a quote at either end is dropped (``"?``), where direct mode unquotes only an id quoted
  at both ends; RE2's ``.`` does not match a newline.

Pure: no I/O, no globals beyond constants. Imports ``jobid`` and ``promql``.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence

from prometheus_cluster_exporter.jobid import tokenize
from prometheus_cluster_exporter.promql import quote

#: An id of 31 or more characters, not counting quotes at both ends.
LONG = '".{31,}"|[^"].{30,}|".{29,}[^"]'
#: The characters RE2 gives a meaning; any other stands for itself.
_SPECIAL = frozenset("\\.+*?()|[]{}^$")
_NUMBER = "0*([0-9]+)"
_FIELD = {"e": ".+", "u": "[0-9]+", "g": "[0-9]+", "j": "[0-9]+", "p": "[0-9]+",
          "h": ".*", "H": "[^.]*"}  # fmt: skip


def escape(text: str) -> str:
    """``text`` as an RE2 literal."""
    return "".join("\\" + char if char in _SPECIAL else char for char in text)


class Form(NamedTuple):
    """One jobid form as a regex. A job form has ``job`` (its group); a process form has
    ``name`` and ``uid`` (their groups, as ``$n``)."""

    text: str
    regex: str
    job: Optional[str] = None
    name: Optional[str] = None
    uid: Optional[str] = None

    @property
    def is_job(self) -> bool:
        return self.job is not None


def form_of(fmt: str) -> Optional[Form]:
    """The regex of one format, or None for a format that never names an owner (no
    ``%j``, and not both ``%e`` and ``%u``)."""
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
            parts.append(f"(?:{_FIELD[value]})")
    regex = '"?' + "".join(parts) + '"?'
    if is_job:
        return Form(fmt, regex, job=groups["j"])
    return Form(fmt, regex, name=groups["e"], uid=groups["u"])


def forms_of(formats: Sequence[str]) -> List[Form]:
    """The forms that can name an owner, in the order they are tried."""
    return [form for form in map(form_of, formats) if form is not None]


def any_of(forms: Sequence[Form]) -> str:
    """One regex matching what any of ``forms`` matches (never matches if none)."""
    if not forms:
        return "[^\\s\\S]"  # matches no string
    return "|".join(f"(?:{form.regex})" for form in forms)


def matchers(label: str, forms: Sequence[Form], index: int) -> str:
    """PromQL matchers selecting the ids of ``forms[index]``: it matches, no earlier form
    does, and the id is not too long to trust."""
    parts = [f"{label}=~{quote(forms[index].regex)}"]
    if index:
        parts.append(f"{label}!~{quote(any_of(forms[:index]))}")
    parts.append(f"{label}!~{quote(LONG)}")
    return ", ".join(parts)
