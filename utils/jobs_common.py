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

import os
import re
import shlex
import shutil
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


def positive_int(spec: JobSpec, name: str, default: Optional[int], minimum: int = 1) -> Optional[int]:
    """Integer option ``--name`` (at least ``minimum``), or ``default`` when it is not given."""
    if name not in spec.options:
        return default
    text = spec.options[name]
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--{name.replace('_', '-')} takes an integer, got '{text}'") from None
    if value < minimum:
        raise UsageError(f"--{name.replace('_', '-')} must be at least {minimum}, got {value}")
    return value


def failure_message(prog: str, failed: List[int], spec: JobSpec) -> str:
    """``prog: K / N failed, log is in <first failed log>`` (+ the other failed job numbers)."""
    msg = f"{prog}: {len(failed)} / {len(spec.jobs)} failed, log is in {spec.log_for(failed[0])}"
    if len(failed) > 1:
        shown = " ".join(str(j) for j in failed[1:11]) + (" ..." if len(failed) > 11 else "")
        msg += f" (also failed: {spec.jobname}={shown})"
    return msg


# Training entry points that run under torchrun: their Trainer joins the process group from RANK/WORLD_SIZE
# (nccl on GPUs, gloo on CPUs), shards the batches by rank and lets only rank 0 write checkpoints and logs;
# what they write before training (config.yaml, CMVN, targets) is written atomically with the same content
# by every rank. ``--gpu N`` with N > 1 starts N copies of one of these (or of a program of the user's).
DDP_ENTRY_POINTS = ("speechkd-pretrain", "speechkd-finetune", "speechkd-distill", "speechkd-pad-distill",
                    "speechkd-train-transducer", "speechkd-prune", "speechkd-train-intent")
_SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", "<", ">", ">>", "<<", "<<<", "<&", ">&", "|&",
                    "&>", ">|"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def launch_with_torchrun(spec: JobSpec, rendezvous: str) -> None:
    """With ``--gpu N`` > 1 (GPUs per node) or ``--nodes M`` > 1, the spec's command becomes its
    :func:`torchrun_command` (``rendezvous``: standalone for utils/run.py, slurm for utils/slurm.py); else
    it stays as it is."""
    gpus, nodes = positive_int(spec, "gpu", 0, minimum=0), positive_int(spec, "nodes", 1)
    if gpus > 1 or nodes > 1:
        spec.command = torchrun_command(spec.command, max(gpus, 1), nodes, rendezvous)


def torchrun_command(command: str, nproc: int, nnodes: int = 1, rendezvous: str = "standalone") -> str:
    """``command`` started by torchrun: ``nproc`` processes per node (one per GPU) on ``nnodes`` nodes.

    ``rendezvous``: ``standalone`` (one node, a free local port: concurrent jobs never collide) or
    ``slurm`` (``srun`` starts one torchrun per node of the allocation, which meet at the first node of
    ``$SLURM_JOB_NODELIST`` on a port derived from ``$SLURM_JOB_ID``). The command must be one program with
    its arguments (leading ``VAR=value`` assignments are kept in front): torchrun starts copies of that
    program, not of a shell line. A ``speechkd-*`` program must be a training entry point
    (:data:`DDP_ENTRY_POINTS`): any other would run N times over the same outputs.

    Example::

        torchrun_command("speechkd-finetune --config c.yaml", 4)
        # 'torchrun --standalone --nnodes 1 --nproc_per_node 4 --no-python speechkd-finetune --config c.yaml'
    """
    where = f"--gpu {nproc}" + (f" --nodes {nnodes}" if nnodes > 1 else "")
    try:
        lex = shlex.shlex(command, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        words = list(lex)
    except ValueError as e:
        raise UsageError(f"{where}: cannot parse the command '{command}': {e}") from None
    ops = [w for w in words if w in _SHELL_OPERATORS]
    if ops:
        raise UsageError(f"{where}: torchrun starts copies of one program, but '{command}' is a shell line "
                         f"(it has '{ops[0]}'); put the pipeline in a script or run it with --gpu 1")
    n_assign = 0
    while n_assign < len(words) and _ASSIGNMENT.match(words[n_assign]):
        n_assign += 1
    if n_assign == len(words):
        raise UsageError(f"{where}: no program in the command '{command}'")
    prog = os.path.basename(words[n_assign])
    if prog.startswith("speechkd-") and prog not in DDP_ENTRY_POINTS:
        raise UsageError(f"{where}: {prog} does not train under torchrun (the entry points that do: "
                         f"{', '.join(DDP_ENTRY_POINTS)}); run it with --gpu 1 or 0")
    if shutil.which("torchrun") is None:
        raise UsageError(f"{where}: torchrun not found in PATH (it comes with torch: source path.sh first)")
    # the leading assignments stay in front of torchrun (its processes inherit them), the rest as written
    m = re.match(r"^\s*((?:[A-Za-z_][A-Za-z0-9_]*=[^\s'\"\\$`]*\s+)*)(.*)$", command, re.S)
    prefix, rest = m.group(1).strip(), m.group(2).strip()
    if len(prefix.split()) != n_assign:
        raise UsageError(f"{where}: write the leading assignments of '{command}' without quotes or $, "
                         "or export them before the runner")
    if rendezvous == "standalone":
        if nnodes > 1:
            raise UsageError(f"{where}: several nodes need a cluster (cmd_backend=slurm)")
        launch = f"torchrun --standalone --nnodes 1 --nproc_per_node {nproc} --no-python"
    elif rendezvous == "slurm":
        head = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
        port = "$((29500 + ${SLURM_JOB_ID:-0} % 20000))"
        launch = (f"srun --nodes {nnodes} --ntasks-per-node 1 --kill-on-bad-exit=1 torchrun --nnodes {nnodes} "
                  f"--nproc_per_node {nproc} --rdzv_backend c10d --rdzv_endpoint \"{head}:{port}\" "
                  f"--rdzv_id \"${{SLURM_JOB_ID:-0}}\" --no-python")
    else:
        raise ValueError(f"rendezvous must be standalone or slurm, got {rendezvous!r}")
    return " ".join(x for x in (prefix, launch, rest) if x)


def usage_exit(prog: str, usage: str, err: Exception) -> int:
    print(f"{prog}: {err}", file=sys.stderr)
    print(usage, file=sys.stderr)
    return 1
