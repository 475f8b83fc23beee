"""Join mode: the recording rules that attribute Lustre IO inside the TSDB.

In join mode (``--mode=join``) the exporter exports only what the TSDB lacks, the owners:

    cluster_job_info{account="physics",jobid="4242",user="alice"} 1
    cluster_user_info{group_name="hpc",uid="1001",user_name="bob"} 1

and these rules do the rest where the Lustre series are stored (Prometheus, Thanos Ruler,
Mimir's ruler, vmalert). They record the same names and labels as direct mode, so the
dashboard and the alerts work unchanged::

    cluster_job_read_throughput_bytes = sum by (account, user) (
        <per-jobid read rate, job ids only, keyed by Slurm job id>
      * on (jobid) group_left (account, user)
        topk by (jobid) (1, max by (jobid, account, user) (last_over_time(cluster_job_info[5m]))))

- The per-jobid rates are direct mode's own queries (``promql``), narrowed to the ids of
  one jobid form (``jobidre``); every id lands in exactly one of job, process or
  unattributed, so the sums add up as in direct mode.
- ``max by`` drops duplicate info series (two exporters in HA), ``topk by (jobid) (1,
  ...)`` keeps one owner should a job's owner ever change, and ``last_over_time`` keeps a
  job's info for the lookback after its last scrape, so a missed scrape or a job that
  left squeue does not break the join.
- Each rule stands alone (no rule reads another's output), so vmalert, whose written
  results reach the TSDB only after a delay, evaluates them as Prometheus does.

Pure: builds text from the settings; no I/O. Imports ``promql``, ``jobidre``, ``metrics``,
``families``, ``budget`` and ``records``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, NamedTuple, Sequence, Tuple

from prometheus_cluster_exporter import families, jobidre, metrics
from prometheus_cluster_exporter.budget import OTHER
from prometheus_cluster_exporter.jobidre import Form
from prometheus_cluster_exporter.metrics import FOLDED_OWNERS, MetricSpec
from prometheus_cluster_exporter.promql import FS_LABEL, LustreSeries, quote
from prometheus_cluster_exporter.records import FS_OF_TARGET

JOB_INFO = metrics.JOB_INFO.name
USER_INFO = metrics.USER_INFO.name
#: The Slurm job id taken from a Lustre jobid, before it becomes the join's ``jobid``.
KEY = "slurm_job_id"
READ, WRITE, METADATA = "read", "write", "metadata"
READ_OPS, WRITE_OPS = "read_operations", "write_operations"
KINDS = (READ, WRITE, METADATA)
_FAMILIES = {
    READ: (families.READ.job, families.READ.proc, families.READ.lost),
    WRITE: (families.WRITE.job, families.WRITE.proc, families.WRITE.lost),
    METADATA: (families.METADATA.job, families.METADATA.proc, families.METADATA.lost),
    READ_OPS: (families.READ_OPS.job, families.READ_OPS.proc, families.READ_OPS.lost),
    WRITE_OPS: (families.WRITE_OPS.job, families.WRITE_OPS.proc, families.WRITE_OPS.lost),
}


class Rule(NamedTuple):
    """A recording rule: the series it records, its expression and its fixed labels."""

    record: str
    expr: str
    labels: Tuple[Tuple[str, str], ...] = ()


def _by(*labels: str) -> str:
    return ", ".join(label for label in labels if label)


def _sum(labels: Sequence[str], expr: str) -> str:
    return f"sum by ({_by(*labels)}) ({expr})" if labels else f"sum({expr})"


def _labelled(expr: str, labels: Sequence[str]) -> str:
    """``expr`` (without these labels) with each of ``labels`` set to ``__other__``."""
    for label in labels:
        expr = f'label_replace({expr}, "{label}", "{OTHER}", "{label}", "")'
    return expr


def _union(terms: Sequence[str]) -> str:
    return "\n  or\n".join(terms) if len(terms) > 1 else terms[0]


@dataclass(frozen=True)
class JoinPlan:
    """The site's series, its jobid forms and the info lookback: all the rules need."""

    series: LustreSeries
    forms: Tuple[Form, ...]
    lookback: str = "5m"
    #: --metrics.max-series: owners kept per job and process family (0: all).
    budget: int = 0
    #: --metrics.operations: the read and write operations families too.
    operations: bool = False

    @classmethod
    def build(
        cls,
        series: LustreSeries,
        formats: Sequence[str],
        lookback: str,
        budget: int = 0,
        operations: bool = False,
    ) -> JoinPlan:
        return cls(series, tuple(jobidre.forms_of(formats)), lookback, budget, operations)

    # -- building blocks ------------------------------------------------------------------

    def labels_after(self, kind: str) -> Tuple[str, ...]:
        return self.series.extra_labels(kind == METADATA)

    def per_jobid(self, kind: str, matchers: str = "") -> str:
        """Direct mode's query of ``kind``, its selector narrowed by ``matchers``, with
        the family's labels after the owner's (``target``, ``fs``)."""
        s = self.series
        if kind != METADATA:
            metric = {READ: s.read_metric, WRITE: s.write_metric, READ_OPS: s.read_samples_metric,
                      WRITE_OPS: s.write_samples_metric}[kind]  # fmt: skip
            return s.throughput(metric, matchers)
        expr = s.metadata(matchers)
        if s.target_label != "target":
            expr = f'label_replace({expr}, "target", "$1", {quote(s.target_label)}, "(.*)")'
        if s.fs_label:  # as records.fs_of_target: the target's own name if not of the form
            expr = (
                f'label_replace(label_replace({expr}, "{FS_LABEL}", "$1", "target", "(.*)"), '
                f'"{FS_LABEL}", "$1", "target", {quote(FS_OF_TARGET)})'
            )
        return expr

    def _of_form(self, kind: str, index: int) -> str:
        return self.per_jobid(kind, jobidre.matchers(self.series.jobid_label, self.forms, index))

    def _relabel(self, expr: str, label: str, group: str, form: Form) -> str:
        jobid = quote(self.series.jobid_label)
        return f'label_replace({expr}, "{label}", "{group}", {jobid}, {quote(form.regex)})'

    def job_io(self, kind: str) -> str:
        """Rates of the ids of job forms, summed per Slurm job id (label ``jobid``)."""
        terms = [
            self._relabel(self._of_form(kind, i), KEY, form.job or "", form)
            for i, form in enumerate(self.forms)
            if form.is_job
        ]
        summed = _sum((KEY, *self.labels_after(kind)), _union(terms))
        return f'label_replace({summed}, "jobid", "$1", "{KEY}", "(.*)")'

    def proc_io(self, kind: str) -> str:
        """Rates of the ids of process forms, summed per executable and uid."""
        terms = [
            self._relabel(
                self._relabel(self._of_form(kind, i), "proc_name", form.name or "", form),
                "uid",
                form.uid or "",
                form,
            )
            for i, form in enumerate(self.forms)
            if not form.is_job
        ]
        return _sum(("proc_name", "uid", *self.labels_after(kind)), _union(terms))

    def unparsable_io(self, kind: str) -> str:
        """Rates of the ids no form explains, or too long to trust."""
        label = self.series.jobid_label
        terms = [self.per_jobid(kind, m) for m in jobidre.unparsable_matchers(label, self.forms)]
        return _union(terms)

    def job_owners(self) -> str:
        return (
            f"topk by (jobid) (1, max by (jobid, account, user) "
            f"(last_over_time({JOB_INFO}[{self.lookback}])))"
        )

    def user_owners(self) -> str:
        return (
            f"topk by (uid) (1, max by (uid, user_name, group_name) "
            f'(last_over_time({USER_INFO}{{group_name!=""}}[{self.lookback}])))'
        )

    # -- the rules --------------------------------------------------------------------------

    def rules(self) -> List[Rule]:
        return [rule for _, rules in self.groups() for rule in rules]

    def groups(self) -> List[Tuple[str, List[Rule]]]:
        """One rule group per query (read, write, metadata, and the operations): Prometheus
        and the rulers evaluate groups concurrently, the rules of a group in turn."""
        return [(f"cluster-exporter.join.{kind}", self._rules_of(kind, *_FAMILIES[kind]))
                for kind in self.kinds()]  # fmt: skip

    def kinds(self) -> Tuple[str, ...]:
        """The queries the rules attribute: read, write, metadata, and the operations."""
        return (*KINDS, READ_OPS, WRITE_OPS) if self.operations else KINDS

    def _rules_of(
        self, kind: str, job: MetricSpec, proc: MetricSpec, lost: MetricSpec
    ) -> List[Rule]:
        extra = self.labels_after(kind)
        rules: List[Rule] = []
        if any(form.is_job for form in self.forms):
            io = self.job_io(kind)
            joined = f"{io}\n* on (jobid) group_left (account, user)\n{self.job_owners()}"
            family = _sum(("account", "user", *extra), joined)
            rules.extend(self._budgeted(job.name, family, ("account", "user"), extra))
            missing = f"{io}\nunless on (jobid)\n{self.job_owners()}"
            rules.append(Rule(lost.name, _sum(extra, missing), (("reason", "unknown_job"),)))
        if any(not form.is_job for form in self.forms):
            io = self.proc_io(kind)
            users = self.user_owners()
            joined = f"{io}\n* on (uid) group_left (user_name, group_name)\n{users}"
            owner = ("proc_name", "group_name", "user_name")
            rules.extend(self._budgeted(proc.name, _sum((*owner, *extra), joined), owner, extra))
            no_group = f'last_over_time({USER_INFO}{{group_name=""}}[{self.lookback}])'
            gid = f"({io}\nunless on (uid)\n{users})\nand on (uid)\n{no_group}"
            rules.append(Rule(lost.name, _sum(extra, gid), (("reason", "unknown_gid"),)))
            anyone = f"last_over_time({USER_INFO}[{self.lookback}])"
            uid = f"{io}\nunless on (uid)\n{anyone}"
            rules.append(Rule(lost.name, _sum(extra, uid), (("reason", "unknown_uid"),)))
        unparsable = _sum(extra, self.unparsable_io(kind))
        rules.append(Rule(lost.name, unparsable, (("reason", "unparsable_jobid"),)))
        return rules

    def _budgeted(
        self, record: str, family: str, owner: Tuple[str, ...], extra: Tuple[str, ...]
    ) -> List[Rule]:
        """A family's rule, or with a budget: the owners whose total over the family
        reaches the N-th biggest total (ties at the N-th place all kept), the others
        summed under ``__other__`` per tuple of ``extra`` labels, in one rule (one
        evaluation: kept and folded owners come from the same data), and how many were
        folded. A real owner named ``__other__`` never takes a place."""
        if not self.budget:
            return [Rule(record, family)]
        on = f"on ({_by(*owner)})"
        other = _labelled("vector(1)", owner)
        ranked = f"(sum by ({_by(*owner)}) ({family})\nunless {on}\n{other})"
        threshold = f"scalar(min(topk({self.budget}, {ranked})))"
        kept = f"({ranked} >= {threshold})"
        folded = _labelled(_sum(extra, f"{family}\nunless {on}\n{kept}"), owner)
        count = f"count({ranked} < {threshold}) or vector(0)"
        return [
            Rule(record, f"({family}\nand {on}\n{kept})\nor\n{folded}"),
            Rule(FOLDED_OWNERS.name, count, (("family", record),)),
        ]

    # -- the exporter's own queries -----------------------------------------------------------

    def unknown_jobs_query(self) -> str:
        """The Slurm job ids with IO now that no info series names (for sacct)."""
        if not any(form.is_job for form in self.forms):
            return ""
        io = _union([self.job_io(kind) for kind in self.kinds()])
        return f"group by (jobid) (\n({io})\nunless on (jobid)\n{self.job_owners()})"

    def uids_query(self) -> str:
        """The uids of process ids that have Lustre series (a small answer: one sample
        per uid, whatever the number of jobids)."""
        s = self.series
        names = "|".join(jobidre.escape(m) for m in (s.read_metric, s.write_metric, s.stats_metric))
        terms = []
        for i, form in enumerate(self.forms):
            if not form.is_job:
                selector = (
                    f"{{__name__=~{quote(names)}, "
                    f"{jobidre.matchers(s.jobid_label, self.forms, i)}}}"
                )
                terms.append(self._relabel(selector, "uid", form.uid or "", form))
        return f"group by (uid) ({_union(terms)})" if terms else ""


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())


def render_rules(plan: JoinPlan, header: Sequence[str] = ()) -> str:
    """The rules as a Prometheus rule file (also read by vmalert, Thanos and Mimir)."""
    lines = [f"# {line}" if line else "#" for line in header]
    lines.append("groups:")
    for name, rules in plan.groups():
        lines += [f"  - name: {name}", "    rules:"]
        for rule in rules:
            lines.append(f"      - record: {rule.record}")
            lines.append("        expr: |-")
            lines.append(_indent(rule.expr, 10))
            if rule.labels:
                lines.append("        labels:")
                lines.extend(f"          {label}: {value}" for label, value in rule.labels)
    return "\n".join(lines) + "\n"
