"""Shared parts of the Kaldi ``run.pl``-style job runners ``utils/run.py`` and ``utils/slurm.py``.

Standard library only: the runners must work before (or without) the speechkd environment.

Command line of both runners::

    RUNNER [--mem 4G] [--time 1:00:00] [--gpu 0] [--num-threads 2] [--max-jobs-run N] [--config FILE] \\
        [JOB=1:N] exp/log/feats.JOB.log command args with JOB ...

- ``JOB=a:b`` (any variable name, e.g. ``SPLIT=1:4``) runs one job per integer in ``a..b``; every
  occurrence of the name in the log path and the command is replaced by the job's number. ``JOB=3`` is a
  single job numbered 3. Without it there is one job and no substitution.
- The command runs through bash. With several command arguments they are joined as in Kaldi's run.pl:
  an argument without whitespace is taken as-is (so ``\\|`` or ``'>'`` act as shell syntax), one with
  whitespace is quoted. A single command argument is taken as a whole shell command line
  (``run.py log "a | b"`` runs the pipeline).

Example::

    spec = parse_command_line(["--mem", "4G", "JOB=1:3", "log/x.JOB.log", "echo", "JOB"])
    spec.jobs            # [1, 2, 3]
    spec.log_for(2)      # "log/x.2.log"
    spec.command_for(2)  # "echo 2"
"""
from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+)(?::(\d+))?$")


class UsageError(Exception):
    """Bad runner command line: printed as one line with the usage hint, exit status 1."""


@dataclass
class JobSpec:
    """What to run: options (names with underscores), job variable, job numbers, log pattern, command."""

    options: Dict[str, str] = field(default_factory=dict)
    jobname: Optional[str] = None
    jobs: List[int] = field(default_factory=lambda: [1])
    log_pattern: str = ""
    command: str = ""

    def _sub(self, text: str, job: int) -> str:
        return text.replace(self.jobname, str(job)) if self.jobname else text

    def log_for(self, job: int) -> str:
        return self._sub(self.log_pattern, job)

    def command_for(self, job: int) -> str:
        return self._sub(self.command, job)

    @property
    def range_text(self) -> str:
        return f"{self.jobs[0]}-{self.jobs[-1]}"


def join_command(args: List[str]) -> str:
    """Join command arguments into one bash command line (Kaldi run.pl rule; see the module docstring)."""
    if len(args) == 1:
        return args[0]
    return " ".join(a if a and not any(c.isspace() for c in a) else shlex.quote(a) for a in args)


def parse_command_line(argv: List[str], flag_options: tuple = ()) -> JobSpec:
    """Parse ``[--opt value]... [JOB=a:b] log command...``; option names are normalised to underscores.

    ``--opt=value`` is accepted too. ``flag_options`` names options that take no value.
    """
    spec = JobSpec()
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        arg = argv[i][2:]
        if arg == "":
            i += 1
            break
        if "=" in arg:
            name, value = arg.split("=", 1)
            i += 1
        elif arg.replace("-", "_") in flag_options:
            name, value = arg, "true"
            i += 1
        else:
            if i + 1 >= len(argv):
                raise UsageError(f"option --{arg} needs a value")
            name, value = arg, argv[i + 1]
            i += 2
        spec.options[name.replace("-", "_")] = value
    rest = argv[i:]
    if rest:
        m = _RANGE.match(rest[0])
        if m:
            spec.jobname = m.group(1)
            start = int(m.group(2))
            end = int(m.group(3)) if m.group(3) is not None else start
            if end < start:
                raise UsageError(f"empty job range '{rest[0]}'")
            spec.jobs = list(range(start, end + 1))
            rest = rest[1:]
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*=\S*:", rest[0]):
            raise UsageError(f"bad job range '{rest[0]}' (expected e.g. JOB=1:4)")
    if len(rest) < 2:
        raise UsageError("expected a log file and a command")
    spec.log_pattern, spec.command = rest[0], join_command(rest[1:])
    if spec.jobname and len(spec.jobs) > 1 and spec.jobname not in spec.log_pattern:
        raise UsageError(f"log file '{spec.log_pattern}' does not contain {spec.jobname}: "
                         f"{len(spec.jobs)} jobs would write one log")
    return spec


def positive_int(spec: JobSpec, name: str, default: Optional[int]) -> Optional[int]:
    if name not in spec.options:
        return default
    text = spec.options[name]
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--{name.replace('_', '-')} takes an integer, got '{text}'") from None
    if value < 1:
        raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return value


def failure_message(prog: str, failed: List[int], spec: JobSpec) -> str:
    """``prog: K / N failed, log is in <first failed log>`` (+ the other failed job numbers)."""
    msg = f"{prog}: {len(failed)} / {len(spec.jobs)} failed, log is in {spec.log_for(failed[0])}"
    if len(failed) > 1:
        shown = " ".join(str(j) for j in failed[1:11]) + (" ..." if len(failed) > 11 else "")
        msg += f" (also failed: {spec.jobname}={shown})"
    return msg


def usage_exit(prog: str, usage: str, err: Exception) -> int:
    print(f"{prog}: {err}", file=sys.stderr)
    print(usage, file=sys.stderr)
    return 1
