#!/usr/bin/env python3
"""Run jobs on this machine, with the interface of Kaldi's run.pl (standard library only).

Usage:
    utils/run.py [--max-jobs-run N] [--mem 4G] [--time 1:00:00] [--gpu 0] [--num-threads 2] \\
        [JOB=1:N] exp/log/feats.JOB.log command args with JOB ...

Examples:
    utils/run.py JOB=1:4 exp/make_fbank/log/fbank.JOB.log \\
        speechkd-compute-fbank --utt-list data/train/split4/JOB data/train exp/fbank
    utils/run.py exp/train/log/train.log speechkd-finetune --config conf/finetune.yaml
    utils/run.py --max-jobs-run 2 JOB=1:8 log/echo.JOB.log "echo JOB | tr 0-9 a-j"

Runs one job per number in the JOB range (``JOB`` replaced by the number in the log name and the
command), at most ``--max-jobs-run`` at once (default: the number of CPUs). The command runs through
bash with stdout and stderr sent to the job's log, which starts with the command line and ends with
``# Accounting: time=SECONDS threads=T`` and ``# Ended (code C) at DATE, elapsed time SECONDS seconds``.

Exit status 0 when every job succeeded; otherwise prints
``utils/run.py: K / N failed, log is in exp/log/feats.3.log`` and exits 1.

``--mem`` and ``--time`` are accepted and ignored here (they matter to utils/slurm.py), as is any other
``--name value`` option. ``--gpu 0`` or ``1`` runs the command as it is; ``--gpu N`` with N > 1 starts it
through ``torchrun --standalone --nproc_per_node N`` (one process per GPU; on a machine without GPUs the N
processes train on the CPU with gloo, a way to try a multi-GPU stage before a cluster job). The command
must then be one training program with its arguments (see ``jobs_common.DDP_ENTRY_POINTS``);
``--nodes M`` > 1 needs utils/slurm.py. Ctrl-C or SIGTERM kills the running jobs.

Threads: ``--num-threads T`` sets OMP_NUM_THREADS/MKL_NUM_THREADS (read by torch) for the jobs unless already
set in the environment. Without it, when several jobs run at once (``min(--max-jobs-run, number of jobs)``
> 1), each job gets OMP_NUM_THREADS=MKL_NUM_THREADS=1 so that jobs x threads never exceeds the cores (torch
would otherwise start one thread per core in every job); a lone job keeps the library default (all cores).
An OMP_NUM_THREADS the user exported is never overridden.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from jobs_common import (JobSpec, UsageError, failure_message, launch_with_torchrun,  # noqa: E402
                         parse_command_line, positive_int, usage_exit)

USAGE = ("usage: utils/run.py [--max-jobs-run N] [--mem M] [--time T] [--gpu G] [--num-threads T] "
         "[JOB=1:N] log-file command args...")


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(concurrent_jobs: int) -> int | None:
    """Threads per job when --num-threads is not given: 1 when jobs run at once, None (library default,
    all cores) for a lone job."""
    return 1 if concurrent_jobs > 1 else None


class LocalRunner:
    """Run the jobs of a :class:`JobSpec` as local bash processes, ``max_jobs`` at a time.

    Example::

        spec = parse_command_line(["JOB=1:3", "log/a.JOB.log", "echo", "JOB"])
        failed = LocalRunner(spec, max_jobs=2).run()   # [] when all three succeeded
    """

    def __init__(self, spec: JobSpec, max_jobs: int, threads: int | None = None):
        self.spec, self.max_jobs = spec, max_jobs
        self.threads = threads if threads else default_threads(min(max_jobs, len(spec.jobs)))
        self._procs: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = False

    def _env(self) -> dict:
        env = dict(os.environ)
        if self.threads and "OMP_NUM_THREADS" not in os.environ:
            for var in THREAD_VARS:
                env.setdefault(var, str(self.threads))
        return env

    def _threads_used(self) -> str:
        return os.environ.get("OMP_NUM_THREADS") or str(self.threads or "default")

    def run_one(self, job: int) -> int:
        """Run job ``job``; return its exit code (writes the log header and footer)."""
        log = self.spec.log_for(job)
        cmd = self.spec.command_for(job)
        d = os.path.dirname(log)
        if d:
            os.makedirs(d, exist_ok=True)
        start = time.time()
        with open(log, "w", encoding="utf-8") as f:
            f.write(f"# {cmd}\n# Started at {time.strftime('%c')}\n#\n")
            f.flush()
            with self._lock:
                if self._stopping:
                    return 130
                proc = subprocess.Popen(["bash", "-c", cmd], stdout=f, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self._env(),
                                        start_new_session=True)
                self._procs[job] = proc
            code = proc.wait()
            with self._lock:
                self._procs.pop(job, None)
            if code < 0:  # killed by a signal: report it the way bash would
                code = 128 - code
            elapsed = int(round(time.time() - start))
            f.write(f"# Accounting: time={elapsed} threads={self._threads_used()}\n")
            f.write(f"# Ended (code {code}) at {time.strftime('%c')}, elapsed time {elapsed} seconds\n")
        return code

    def kill_all(self) -> None:
        with self._lock:
            self._stopping = True
            for proc in self._procs.values():
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass

    def run(self) -> list[int]:
        """Run every job; return the sorted job numbers that failed."""
        codes: dict[int, int] = {}
        pool = ThreadPoolExecutor(max_workers=min(self.max_jobs, len(self.spec.jobs)))
        try:
            futures = {job: pool.submit(self.run_one, job) for job in self.spec.jobs}
            for job, fut in futures.items():
                codes[job] = fut.result()
        except BaseException:
            self.kill_all()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return sorted(j for j, c in codes.items() if c != 0)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = sys.argv[0] if sys.argv and sys.argv[0] else "utils/run.py"
    try:
        spec = parse_command_line(argv)
        max_jobs = positive_int(spec, "max_jobs_run", cpu_count())
        threads = positive_int(spec, "num_threads", None)
        launch_with_torchrun(spec, "standalone")
    except UsageError as e:
        return usage_exit(prog, USAGE, e)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        failed = LocalRunner(spec, max_jobs, threads).run()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted, jobs killed", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    if failed:
        print(failure_message(prog, failed, spec), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
