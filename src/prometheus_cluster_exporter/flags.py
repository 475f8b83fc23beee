"""The command line: the parser built from ``flagtable.FLAGS``, and its values.

Every flag is accepted as ``-flag value``, ``-flag=value``, ``--flag value`` and
``--flag=value``, as Go's flag package does, so existing systemd options files keep
working unchanged. A flag left out keeps ``Config``'s default: each default is defined
once, on the dataclass, and the help text shows it from there.

Imports ``config`` and ``flagtable`` only; ``parse_args`` returns plain values (a ``Mode``
and a ``Config``) and exits with status 2 and one line on a bad flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, NoReturn, Optional, Sequence

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.config import (
    JOIN,
    RULES_SETTINGS,
    Config,
    ConfigError,
)
from prometheus_cluster_exporter.flagtable import FLAGS

PROG = "prometheus-cluster-exporter"

#: How the exporter runs; chosen by flags, never part of the settings.
SERVE, ONCE, CHECK = "serve", "once", "check"


@dataclass(frozen=True)
class Mode:
    """``action``: serve, once or check; ``demo``: the built-in cluster as the sources."""

    action: str = SERVE
    demo: bool = False


_MODE_FIELDS = frozenset({"version", "once", "check", "demo"})
_DEFAULTS: Dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(Config) if f.default is not dataclasses.MISSING
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Prometheus exporter for Lustre IO throughput and metadata operations "
        "per Slurm account/user and per process name/user/group.",
        epilog="other commands: 'prometheus-cluster-exporter rules [flags]' prints the "
        "recording rules of --mode=join for these flags; 'prometheus-cluster-exporter "
        "simulate --help', a synthetic Lustre jobstats exporter whose counters grow at "
        "known rates (for trying dashboards and checking the exporter against ground truth); "
        "'prometheus-cluster-exporter report --help', a usage report for chargeback (bytes "
        "and metadata operations per account and user over a period, from the "
        "--metrics.counters series a Prometheus stored)",
        allow_abbrev=False,
    )
    groups: Dict[str, Any] = {}
    for flag in FLAGS:
        group = groups.get(flag.group)
        if group is None:
            group = groups[flag.group] = parser.add_argument_group(flag.group)
        options: Dict[str, Any] = {"dest": flag.name, "default": argparse.SUPPRESS}
        default = _DEFAULTS.get(flag.sets[0])
        text = (
            flag.help.replace("{default}", flag.show(default)) if default is not None else flag.help
        )
        options["help"] = text.replace("%", "%%")
        if flag.switch:
            options["action"] = "store_true"
        else:
            options["metavar"] = flag.metavar
            if flag.repeat:
                options["action"] = "append"
            if flag.choices:
                options["choices"] = flag.choices
        group.add_argument(f"-{flag.name}", f"--{flag.name}", **options)
    return parser


@dataclass(frozen=True)
class Invocation:
    mode: Mode
    config: Config


#: Values Go's flag package accepts for a boolean flag (``-flag=value``).
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def go_booleans(argv: Sequence[str], parser: argparse.ArgumentParser) -> List[str]:
    """``-version=true``, ``--slurm.sacct=false``: Go's spelling of a switch with a value,
    rewritten to the switch itself or to nothing."""
    switches = {flag.name for flag in FLAGS if flag.switch}
    out: List[str] = []
    for arg in argv:
        name, sep, value = arg.lstrip("-").partition("=")
        if not (sep and arg.startswith("-") and name in switches):
            out.append(arg)
        elif value in _TRUE:
            out.append(f"--{name}")
        elif value not in _FALSE:
            parser.error(f"--{name}: expected true or false, got {value!r}")
    return out


def parse_args(argv: Optional[Sequence[str]] = None, rules: bool = False) -> Invocation:
    """Flags -> (mode, validated Config); exits 2 with one message on a bad flag.
    ``rules``: for the ``rules`` command, which accepts the exporter's flags but keeps
    only the settings the rules depend on (no --promserver, no credential file read)."""
    parser = build_parser()
    if rules:
        parser.prog = f"{PROG} rules"
    args = sys.argv[1:] if argv is None else argv
    given: Dict[str, Any] = vars(parser.parse_args(go_booleans(args, parser)))
    values: Dict[str, Any] = {}
    try:
        for flag in FLAGS:  # in table order: --web.listen-address overrides --port
            if flag.name not in given:
                continue
            raw = given[flag.name]
            if flag.repeat:
                value: Any = tuple(raw)
            elif flag.convert is not None:
                value = flag.convert(raw)
            else:
                value = raw
            if len(flag.sets) == 1:
                values[flag.sets[0]] = value
            else:
                values.update(zip(flag.sets, value))
        if values.pop("version", False):
            print(f"{PROG} {__version__}")
            raise SystemExit(0)
        mode = _mode(values)
        if rules:
            values = {name: value for name, value in values.items() if name in RULES_SETTINGS}
        config = Config(**values)
        if mode.demo and config.promserver:
            raise ConfigError("--demo and --promserver exclude each other")
        if mode.demo and config.mode == JOIN:
            raise ConfigError("--demo and --mode=join exclude each other")
        if not mode.demo and not config.promserver and not rules:
            raise ConfigError("--promserver is required (e.g. --promserver=http://prometheus:9090)")
    except ConfigError as exc:
        parser.error(str(exc))
    return Invocation(mode, config)


def _mode(values: Dict[str, Any]) -> Mode:
    flags = {name: bool(values.pop(name, False)) for name in _MODE_FIELDS - {"version"}}
    action = CHECK if flags["check"] else ONCE if flags["once"] else SERVE
    return Mode(action, flags["demo"])


def parse_config(argv: Optional[Sequence[str]] = None) -> Config:
    """The Config of a command line (see ``parse_args``)."""
    return parse_args(argv).config


def rules_flags(config: Config) -> List[str]:
    """``--name=value`` of each rule setting not at its default (the rules' header)."""
    shown: List[str] = []
    for name in RULES_SETTINGS:
        value = getattr(config, name)
        if value == _DEFAULTS.get(name):
            continue
        flag = next(f for f in FLAGS if f.sets == (name,))
        if flag.switch:
            shown.append(f"--{flag.name}")
        else:
            shown += [f"--{flag.name}={item}" for item in (value if flag.repeat else (value,))]
    return shown
