"""The Lustre jobid grammar, mirroring the site's ``jobid_var``/``jobid_name`` settings.

A format uses Lustre's ``jobid_name`` codes: ``%e`` executable name, ``%u`` uid, ``%g``
gid, ``%j`` job id (from ``jobid_var``), ``%h`` hostname, ``%H`` short hostname, ``%p``
pid, and ``%%`` for a literal percent sign; anything else is a literal separator.
Formats are tried in order; the first that explains an id wins. The default is
``%j`` (``jobid_var=SLURM_JOB_ID``: a plain number is a Slurm job) then ``%e.%u`` (the
``jobid_name`` fallback: a process name and a uid, split on the last dot).

An id with a job id (``%j``) is a Slurm job, whatever else it holds. Otherwise an id with
a non-empty ``%e`` and a ``%u`` is a process of that uid. Anything else is unparsable.

Lustre keeps at most 31 bytes of a jobid. An id of that length may have been cut: its
last field may be partial or missing. A partial host or name is still used, but a
partial number (uid, job id) could name somebody else, so it is not trusted.

Lustre 2.16 quotes some ids (``"1125"``); the quotes are removed first. Newer Lustre
versions may also write a byte outside the plain characters as ``\\xHH``: such an escape
counts as the one byte it stands for. An id longer than Lustre can produce (more than 31
bytes so counted) did not come from Lustre: it is unparsable without being parsed, so
no id, however long, costs more than a short one.
"""

from __future__ import annotations

import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

JOBID_MAX_BYTES = 31
# Every byte written as a four-character escape.
JOBID_MAX_CHARS = 4 * JOBID_MAX_BYTES
_ESCAPE = re.compile(r"\\x[0-9a-fA-F]{2}")
DEFAULT_FORMATS = ("%j", "%e.%u")

#: The pattern of each field code (also written as RE2 by ``jobidre``).
FIELD_PATTERNS = {
    "e": ".+",
    "u": "[0-9]+",
    "g": "[0-9]+",
    "j": "[0-9]+",
    "p": "[0-9]+",
    "h": ".*",
    "H": "[^.]*",
}
_PARTIAL = {"u": "[0-9]*", "g": "[0-9]*", "j": "[0-9]*", "p": "[0-9]*"}
_NUMERIC = frozenset("ugjp")


class JobRef(NamedTuple):
    """A Slurm job id (as squeue's ``%A`` prints it)."""

    jobid: str


class ProcRef(NamedTuple):
    """A process name and the uid it ran as."""

    proc_name: str
    uid: int


Ref = Union[JobRef, ProcRef, None]
Token = Tuple[bool, str]  # (is_field, code or literal text)


def tokenize(fmt: str) -> List[Token]:
    """Split a jobid_name format into fields and literals; ValueError if malformed."""
    tokens: List[Token] = []
    literal = ""
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char != "%":
            literal += char
            i += 1
            continue
        if i + 1 >= len(fmt):
            raise ValueError(f"{fmt!r}: '%' at the end")
        code = fmt[i + 1]
        i += 2
        if code == "%":
            literal += "%"
            continue
        if code not in FIELD_PATTERNS:
            raise ValueError(f"{fmt!r}: unknown code %{code} (known: %e %u %g %j %h %H %p)")
        if literal:
            tokens.append((False, literal))
            literal = ""
        if tokens and tokens[-1][0]:
            raise ValueError(f"{fmt!r}: %{tokens[-1][1]} and %{code} need a separator between them")
        tokens.append((True, code))
    if literal:
        tokens.append((False, literal))
    if not any(is_field and code in "ju" for is_field, code in tokens):
        raise ValueError(f"{fmt!r}: needs %j or %u to name a job or a user")
    return tokens


def _compile(tokens: Sequence[Token], partial_last: bool) -> re.Pattern[str]:
    parts = []
    for index, (is_field, value) in enumerate(tokens):
        if not is_field:
            parts.append(re.escape(value))
            continue
        last = partial_last and index == len(tokens) - 1
        pattern = _PARTIAL.get(value, FIELD_PATTERNS[value]) if last else FIELD_PATTERNS[value]
        parts.append(f"({pattern})")
    return re.compile("".join(parts), re.DOTALL)


class _Format:
    def __init__(self, fmt: str) -> None:
        self.text = fmt
        self.tokens = tokenize(fmt)
        self.full = _compile(self.tokens, partial_last=False)
        # For ids that may be truncated: the whole format with its last field partial,
        # then ever shorter prefixes ending in a field.
        self.truncated: List[Tuple[re.Pattern[str], List[str]]] = []
        for end in range(len(self.tokens), 0, -1):
            prefix = self.tokens[:end]
            if not prefix[-1][0]:
                continue
            codes = [code for is_field, code in prefix if is_field]
            self.truncated.append((_compile(prefix, partial_last=True), codes))
        self.codes = [code for is_field, code in self.tokens if is_field]

    def fields(self, jobid: str, truncated: bool) -> Optional[Dict[str, str]]:
        if not truncated:
            match = self.full.fullmatch(jobid)
            return dict(zip(self.codes, match.groups())) if match else None
        for pattern, codes in self.truncated:
            match = pattern.fullmatch(jobid)
            if match:
                found = dict(zip(codes, match.groups()))
                if codes[-1] in _NUMERIC:  # possibly cut digits: not trustworthy
                    del found[codes[-1]]
                return found
        return None


def _interpret(fields: Dict[str, str]) -> Ref:
    job = fields.get("j")
    if job:
        return JobRef(str(int(job)))
    name, uid = fields.get("e"), fields.get("u")
    if name and uid:
        return ProcRef(name, int(uid))
    return None


class JobidGrammar:
    """Parses jobids by the configured formats (see the module docstring)."""

    def __init__(self, formats: Sequence[str] = DEFAULT_FORMATS) -> None:
        if not formats:
            raise ValueError("at least one jobid format is needed")
        self.formats = [_Format(f) for f in formats]
        self._fast_default = tuple(formats) == DEFAULT_FORMATS
        #: Every id of ASCII digits without a leading zero, shorter than Lustre's cut, is
        #: that Slurm job's: the first format is ``%j``.
        self.numbers_are_jobs = formats[0] == "%j"

    def parse(self, jobid: str) -> Ref:
        if len(jobid) >= 2 and jobid[0] == '"' and jobid[-1] == '"':
            jobid = jobid[1:-1]
        if len(jobid) > JOBID_MAX_CHARS:
            return None
        # Characters outside ASCII take more than one byte; an escape stands for one.
        size = len(jobid) if jobid.isascii() else len(jobid.encode("utf-8", "surrogatepass"))
        if size >= JOBID_MAX_BYTES and "\\x" in jobid:
            size -= 3 * len(_ESCAPE.findall(jobid))
        if size > JOBID_MAX_BYTES:
            return None
        truncated = size == JOBID_MAX_BYTES
        if self._fast_default and not truncated:
            return _parse_default(jobid)
        for fmt in self.formats:
            fields = fmt.fields(jobid, truncated)
            if fields is not None:
                ref = _interpret(fields)
                if ref is not None:
                    return ref
        return None


def _parse_default(jobid: str) -> Ref:
    """``%j`` then ``%e.%u`` without regular expressions (the common case, kept fast)."""
    if jobid.isdigit() and jobid.isascii():
        return JobRef(str(int(jobid)))
    name, dot, uid = jobid.rpartition(".")
    if dot and name and uid.isdigit() and uid.isascii():
        return ProcRef(name, int(uid))
    return None
