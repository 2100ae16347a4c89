"""A lane runner started ahead of its run: papermill imported, its kernel up, waiting for one job.

    python -m direng_kernel.pas.runner KERNEL

The kernel pool (`pas.pool`) starts it under the lane's resource limits, in a session of its own,
with the lane's environment less what is particular to a run. It starts KERNEL and waits for one
JSON job on stdin: the notebook, the output path, the parameters, the run's working directory,
its whole environment and its log file. It then runs the job through papermill's `direng` engine
on that kernel (`pas.engine`), shuts the kernel down and exits: 0 when the notebook ran, 1 when it
failed, with the traceback in the log as `python -m papermill` writes it. End of input without a
job (the executor stopped, or died) shuts the kernel down too.

One runner, one kernel, one run: a kernel is never handed a second run, so nothing a run left in
its kernel (globals, imports, cwd, environment) can reach another.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback

log = logging.getLogger(__name__)


def _redirect_output(path: str) -> None:
    """From here on, this process's stdout and stderr go to the run's log."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


PRELOAD = "__import__('direng_kernel.pas.lane')"  # into sys.modules only: no name in the namespace


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    kernel = args[0] if args else "python3"
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import papermill  # what a cold run pays for on every run
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    from .engine import ENGINE_NAME, silent_execute

    km = AsyncKernelManager(kernel_name=kernel)
    run_sync(km.start_kernel)(cwd=os.getcwd())
    try:
        if kernel == "python3":
            # While the lane is idle: the module every lane cell starts with. It reads its run's
            # environment only when called, so importing it before the run leaves nothing behind.
            try:
                run_sync(silent_execute)(km, PRELOAD, 60, wait_ready=True)
            except Exception:  # noqa: BLE001 — only slower: the lane's cell imports it itself
                traceback.print_exc()
        line = sys.stdin.readline()
        if not line.strip():
            return 0  # no job: the pool was closed
        job = json.loads(line)
        _redirect_output(job["log"])
        os.environ.clear()
        os.environ.update(job["env"])
        os.chdir(job["cwd"])
        try:
            papermill.execute_notebook(job["input"], job["output"], parameters=job["parameters"],
                                       engine_name=ENGINE_NAME, kernel_name=kernel, progress_bar=False,
                                       km=km, run_cwd=job["cwd"], run_env=job["env"])
        except Exception:  # noqa: BLE001 — reported as `python -m papermill` reports it
            traceback.print_exc()
            return 1
        return 0
    finally:
        try:
            run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 — the kernel may be gone already (killed with the run)
            pass


if __name__ == "__main__":
    sys.exit(main())
