#!/usr/bin/env python3
"""Run jobs on a Slurm cluster as one array job, with the interface of Kaldi's run.pl (stdlib only).

Usage:
    utils/slurm.py [--config conf/slurm.conf] [--mem 4G] [--time 1:00:00] [--gpu 1] [--num-threads 2] \\
        [--max-jobs-run N] [JOB=1:N] exp/log/feats.JOB.log command args with JOB ...

Examples:
    utils/slurm.py --config conf/slurm.conf --mem 2G JOB=1:8 exp/make_fbank/log/fbank.JOB.log \\
        speechkd-compute-fbank --utt-list data/train/split8/JOB data/train exp/fbank
    utils/slurm.py --gpu 1 --time 4:00:00 exp/train/log/train.log speechkd-finetune --config conf/ft.yaml

What it does:
  1. reads the config (``--config``; else ``conf/slurm.conf`` when it exists; else the built-in default
     below) and turns ``--mem/--time/--gpu/--num-threads/...`` into sbatch options;
  2. writes a batch script ``<logdir>/q/<name>.sh`` (``<name>`` = the log file name without ``JOB`` and
     ``.log``) that runs the command of task ``$SLURM_ARRAY_TASK_ID`` through bash in the current
     directory, writes that task's own log (command line first, ``# Accounting: time=…`` and
     ``# Ended (code C)`` last) and an exit-status file ``<logdir>/q/<name>.status.<task>``;
  3. submits ONE array job ``sbatch --array=A-B[%max-jobs-run]`` (Slurm's own output of each task goes to
     ``<logdir>/q/<name>.<task>.out``);
  4. waits by polling ``squeue`` (no accounting database needed), then reads every status file. A task
     that left none (killed for time or memory, node failure) counts as failed, with the state from
     ``scontrol show job``. Exit 0 when all succeeded, else
     ``utils/slurm.py: K / N failed, log is in exp/log/feats.3.log`` and exit 1.
  Ctrl-C or SIGTERM cancels the array job (``scancel``).

Several GPUs and nodes: ``--gpu N`` asks for N GPUs per node (the config's ``gpu`` option) and, with N > 1,
each task runs its command as ``srun torchrun --nproc_per_node N`` (one process per GPU); ``--nodes M``
(M > 1) asks for M nodes with one task each (``--nodes=M --ntasks-per-node=1``) and the M torchruns meet at
the allocation's first node (c10d rendezvous, port from the job id). The command must be one training
program with its arguments (``jobs_common.DDP_ENTRY_POINTS``)::

    utils/slurm.py --gpu 4 --nodes 2 --time 72:00:00 exp/distil/train.log speechkd-distill --config ...

Config file (Kaldi/ESPnet slurm.conf style; ``$0`` is the option's value)::

    command sbatch --export=ALL
    option name=* --job-name $0
    option time=* --time $0
    option mem=* --mem $0
    option mem=0                       # no memory request
    option num_threads=* --cpus-per-task $0
    option num_threads=1 --cpus-per-task 1
    option gpu=* --gres=gpu:$0         # e.g. add "-p gpu" here
    option gpu=0                       # e.g. "option gpu=0 -p cpu"
    default gpu=0

``--foo value`` looks for ``option foo=value`` first, then ``option foo=*``; an option the config does
not know is an error. ``default foo=value`` applies when ``--foo`` is not given.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from jobs_common import (JobSpec, UsageError, failure_message, launch_with_torchrun,  # noqa: E402
                         parse_command_line, positive_int, usage_exit)

USAGE = ("usage: utils/slurm.py [--config conf/slurm.conf] [--mem M] [--time T] [--gpu G] "
         "[--num-threads T] [--max-jobs-run N] [JOB=1:N] log-file command args...")

DEFAULT_CONFIG = """\
command sbatch --export=ALL
option name=* --job-name $0
option time=* --time $0
option mem=* --mem $0
option mem=0
option num_threads=* --cpus-per-task $0
option num_threads=1 --cpus-per-task 1
option gpu=* --gres=gpu:$0
option gpu=0
default gpu=0
"""

# options the runner itself consumes (never looked up in the config)
RUNNER_OPTIONS = ("config", "max_jobs_run", "poll_interval", "nodes")
# final task states in which the batch script cannot have written its status file
KILLED_STATES = {"CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED",
                 "FAILED"}


class SlurmConfig:
    """Parsed slurm.conf: the submit command, option templates and defaults.

    Example::

        cfg = SlurmConfig.parse(DEFAULT_CONFIG)
        cfg.sbatch_args({"mem": "4G", "gpu": "1"})
        # ['sbatch', '--export=ALL', '--mem', '4G', '--gres=gpu:1']
    """

    def __init__(self, command, options, defaults, source="<built-in>"):
        self.command, self.options, self.defaults, self.source = command, options, defaults, source

    @classmethod
    def parse(cls, text: str, source: str = "<built-in>") -> "SlurmConfig":
        command, options, defaults = None, {}, {}
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            if word == "command":
                command = shlex.split(rest)
            elif word in ("option", "default"):
                m = re.match(r"^([A-Za-z_][\w-]*)=(\S+)\s*(.*)$", rest)
                if not m:
                    raise UsageError(f"{source}:{n}: expected '{word} name=value ...', got '{raw.strip()}'")
                name, value, args = m.group(1).replace("-", "_"), m.group(2), m.group(3)
                if word == "option":
                    options[(name, value)] = shlex.split(args)
                else:
                    defaults[name] = value
            else:
                raise UsageError(f"{source}:{n}: unknown line type '{word}' (expected command/option/default)")
        if not command:
            raise UsageError(f"{source}: no 'command' line (e.g. 'command sbatch --export=ALL')")
        return cls(command, options, defaults, source)

    @classmethod
    def load(cls, path: str | None) -> "SlurmConfig":
        if path is None:
            if os.path.isfile("conf/slurm.conf"):
                path = "conf/slurm.conf"
            else:
                return cls.parse(DEFAULT_CONFIG)
        if not os.path.isfile(path):
            raise UsageError(f"config file '{path}' not found")
        with open(path, encoding="utf-8") as f:
            return cls.parse(f.read(), source=path)

    def option_args(self, name: str, value: str) -> list[str]:
        if (name, value) in self.options:
            return list(self.options[(name, value)])
        if (name, "*") in self.options:
            return [a.replace("$0", value) for a in self.options[(name, "*")]]
        known = sorted({n for n, _ in self.options})
        raise UsageError(f"option --{name.replace('_', '-')} {value} is not in {self.source} "
                         f"(known: {', '.join('--' + k.replace('_', '-') for k in known)})")

    def sbatch_args(self, opts: dict) -> list[str]:
        values = dict(self.defaults)
        values.update(opts)
        args = list(self.command)
        for name, value in values.items():
            args += self.option_args(name, value)
        return args


def _job_base(spec: JobSpec) -> str:
    """Name for the runner's own files, from the log name: ``feats.JOB.log`` → ``feats``."""
    base = os.path.basename(spec.log_pattern)
    if spec.jobname:
        base = base.replace("." + spec.jobname, "").replace(spec.jobname, "")
    base = re.sub(r"\.log$", "", base).strip(".") or "job"
    return re.sub(r"[^\w.+-]", "_", base)


def batch_script(spec: JobSpec, status_prefix: str, threads: int) -> str:
    """Bash script run by every array task: command of task ``$SLURM_ARRAY_TASK_ID`` → its log."""
    q = shlex.quote
    if spec.jobname:
        sub_cmd = f'cmd=${{cmd_template//{spec.jobname}/$task}}'
        sub_log = f'log=${{log_template//{spec.jobname}/$task}}'
    else:
        sub_cmd, sub_log = "cmd=$cmd_template", "log=$log_template"
    return f"""#!/bin/bash
# Written by utils/slurm.py: one task of an array job.
cd {q(os.getcwd())} || exit 1
task=${{SLURM_ARRAY_TASK_ID:-{spec.jobs[0]}}}
cmd_template={q(spec.command)}
log_template={q(spec.log_pattern)}
{sub_cmd}
{sub_log}
status={q(status_prefix)}.$task
mkdir -p "$(dirname "$log")"
{{
  printf '# %s\\n' "$cmd"
  echo "# Started at $(date) on $(hostname) (Slurm job ${{SLURM_ARRAY_JOB_ID:-?}}_$task)"
  echo "#"
}} > "$log"
start=$(date +%s)
bash -c "$cmd" </dev/null >> "$log" 2>&1
ret=$?
end=$(date +%s)
echo "# Accounting: time=$((end - start)) threads={threads}" >> "$log"
echo "# Ended (code $ret) at $(date), elapsed time $((end - start)) seconds" >> "$log"
echo "$ret" > "$status.tmp.$$" && mv -f "$status.tmp.$$" "$status"
exit $ret
"""


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def task_state(job_id: str, task: int) -> str:
    """``State (Reason)`` of one array task from ``scontrol show job``, or "" when Slurm forgot it."""
    try:
        out = _run(["scontrol", "show", "job", f"{job_id}_{task}"], timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    state = re.search(r"JobState=(\S+)", out)
    reason = re.search(r"Reason=(\S+)", out)
    if not state:
        return ""
    return state.group(1) + (f" ({reason.group(1)})" if reason and reason.group(1) != "None" else "")


class SlurmRunner:
    """Submit a :class:`JobSpec` as one Slurm array job and wait for it.

    Example::

        spec = parse_command_line(["JOB=1:3", "log/a.JOB.log", "echo", "JOB"])
        runner = SlurmRunner(spec, SlurmConfig.load(None), {"mem": "1G"}, max_jobs=None)
        failed = runner.run()   # [] when all tasks succeeded
    """

    def __init__(self, spec: JobSpec, config: SlurmConfig, slurm_opts: dict, max_jobs: int | None,
                 threads: int = 1, poll_max: float = 10.0, prog: str = "utils/slurm.py"):
        self.spec, self.config, self.slurm_opts = spec, config, slurm_opts
        self.max_jobs, self.threads, self.poll_max, self.prog = max_jobs, threads, poll_max, prog
        logdir = os.path.dirname(spec.log_pattern) or "."
        base = _job_base(spec)
        self.qdir = os.path.join(logdir, "q")
        self.script = os.path.join(self.qdir, f"{base}.sh")
        self.status_prefix = os.path.join(self.qdir, f"{base}.status")
        self.out_pattern = os.path.join(self.qdir, f"{base}.%a.out")
        self.job_id: str | None = None

    def status_file(self, task: int) -> str:
        return f"{self.status_prefix}.{task}"

    def prepare(self) -> list[str]:
        """Write the batch script, remove stale status files; return the sbatch command."""
        os.makedirs(self.qdir, exist_ok=True)
        for task in self.spec.jobs:
            try:
                os.unlink(self.status_file(task))
            except FileNotFoundError:
                pass
        tmp = f"{self.script}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(batch_script(self.spec, os.path.abspath(self.status_prefix), self.threads))
        os.chmod(tmp, 0o755)
        os.replace(tmp, self.script)
        opts = dict(self.slurm_opts)
        if ("name", "*") in self.config.options:
            opts.setdefault("name", _job_base(self.spec))
        array = self.spec.range_text + (f"%{self.max_jobs}" if self.max_jobs else "")
        nodes = positive_int(self.spec, "nodes", 1)
        per_node = [f"--nodes={nodes}", "--ntasks-per-node=1"] if nodes > 1 else []
        return [*self.config.sbatch_args(opts), *per_node, "--parsable", f"--array={array}",
                f"--output={os.path.abspath(self.out_pattern)}", f"--chdir={os.getcwd()}",
                os.path.abspath(self.script)]

    def submit(self) -> str:
        cmd = self.prepare()
        try:
            res = _run(cmd, timeout=120)
        except FileNotFoundError:
            raise UsageError(f"'{cmd[0]}' not found: is Slurm installed here?") from None
        except subprocess.TimeoutExpired:
            raise UsageError(f"'{cmd[0]}' did not answer within 120 s") from None
        if res.returncode != 0:
            raise UsageError(f"submission failed ({shlex.join(cmd)}): {res.stderr.strip()}")
        self.job_id = res.stdout.strip().split(";")[0]
        if not re.match(r"^\d+$", self.job_id):
            raise UsageError(f"unexpected sbatch output '{res.stdout.strip()}'")
        return self.job_id

    def _in_queue(self) -> bool | None:
        """True while any task is pending/running, False when none is, None when squeue failed."""
        try:
            res = _run(["squeue", "-h", "-j", self.job_id, "-o", "%T"], timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if res.returncode != 0:
            if "Invalid job id" in res.stderr:
                return False
            return None
        return bool(res.stdout.strip())

    def wait(self, grace: float = 30.0) -> None:
        """Poll until every status file exists or the job has left the queue (then wait ``grace``)."""
        delay, left_queue_at, squeue_failures = 0.5, None, 0
        while True:
            if all(os.path.exists(self.status_file(t)) for t in self.spec.jobs):
                return
            in_queue = self._in_queue()
            if in_queue is None:
                squeue_failures += 1
                if squeue_failures in (3, 30):
                    print(f"{self.prog}: squeue keeps failing for job {self.job_id}; still waiting",
                          file=sys.stderr)
            elif in_queue:
                squeue_failures, left_queue_at = 0, None
            else:
                # Gone from the queue. Tasks Slurm ended itself (timeout, memory, cancel, node failure)
                # never write a status file: stop waiting for them. Others may still be on their way
                # through a slow shared file system: give those ``grace`` seconds.
                missing = [t for t in self.spec.jobs if not os.path.exists(self.status_file(t))]
                if all(task_state(self.job_id, t).split(" ")[0] in KILLED_STATES for t in missing):
                    return
                left_queue_at = left_queue_at or time.time()
                if time.time() - left_queue_at > grace:
                    return
                delay = 0.5
            time.sleep(delay)
            delay = min(delay * 1.5, self.poll_max)

    def collect(self) -> tuple[list[int], dict[int, str]]:
        """Return (failed task numbers, {task: explanation for tasks that left no status})."""
        failed, why = [], {}
        for task in self.spec.jobs:
            try:
                with open(self.status_file(task), encoding="utf-8") as f:
                    code = int(f.read().strip() or "1")
            except (OSError, ValueError):
                state = task_state(self.job_id, task)
                why[task] = f"no exit status from task {task}" + (f", Slurm state {state}" if state else "")
                code = 1
            if code != 0:
                failed.append(task)
        return failed, why

    def cancel(self) -> None:
        if self.job_id:
            try:
                _run(["scancel", self.job_id], timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass

    def run(self) -> list[int]:
        self.submit()
        try:
            self.wait()
        except BaseException:
            self.cancel()
            raise
        failed, why = self.collect()
        for task, text in why.items():
            print(f"{self.prog}: {text}; see {self.spec.log_for(task)} and "
                  f"{self.out_pattern.replace('%a', str(task))}", file=sys.stderr)
        return failed


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = sys.argv[0] if sys.argv and sys.argv[0] else "utils/slurm.py"
    try:
        spec = parse_command_line(argv)
        max_jobs = positive_int(spec, "max_jobs_run", None)
        threads = positive_int(spec, "num_threads", 1)
        launch_with_torchrun(spec, "slurm")   # one torchrun per node (srun), one process per GPU
        poll_max = float(spec.options.get("poll_interval", 10))
        config = SlurmConfig.load(spec.options.get("config"))
        slurm_opts = {k: v for k, v in spec.options.items() if k not in RUNNER_OPTIONS}
        runner = SlurmRunner(spec, config, slurm_opts, max_jobs, threads, poll_max, prog)
        config.sbatch_args(slurm_opts)  # unknown options fail before anything is written
    except (UsageError, ValueError) as e:
        return usage_exit(prog, USAGE, e)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        failed = runner.run()
    except UsageError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted, cancelled Slurm job {runner.job_id}", file=sys.stderr)
        return 130
    if failed:
        print(failure_message(prog, failed, spec), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
