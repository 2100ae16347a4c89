"""DirEng's papermill engine: nbclient's engine, able to run on a kernel started before its run.

Registered with papermill as the engine `direng` (entry point `papermill.engine`), so a lane run,
a replay and a plain `papermill NB OUT --engine direng` execute the same way.

Without `km` it is papermill's own nbclient engine. Given `km`, a kernel manager whose kernel is
already up (a kernel pool's, see `pas.pool`), it executes on that kernel after moving it into the
run: one silent execute, before any cell, sets the kernel's working directory to `run_cwd` and its
environment to exactly `run_env` (what the kernel would have had had it been started for this
run). The notebook never shows it. A pooled kernel serves one run and is shut down by its runner.
"""

from __future__ import annotations

import json
import logging

from papermill.engines import NBClientEngine

from .pool import ENGINE_NAME

log = logging.getLogger(__name__)

__all__ = ["ENGINE_NAME", "DirEngEngine", "setup_code"]


def setup_code(cwd: str, env: dict[str, str]) -> str:
    """What moves a started kernel into its run: its cwd and its whole environment."""
    return ("import os as _direng_os\n"
            f"_direng_os.chdir({json.dumps(cwd)})\n"
            "_direng_os.environ.clear()\n"
            f"_direng_os.environ.update({json.dumps(env)})\n"
            "del _direng_os\n")


class SetupFailed(RuntimeError):
    """The pooled kernel could not be moved into its run (it is not used for it)."""


async def silent_execute(km, code: str, timeout: float, *, wait_ready: bool = False) -> None:
    """Run `code` in `km`'s kernel without output or history, on a client of its own; raise
    SetupFailed when the kernel refuses it."""
    from jupyter_client.session import Session

    # A session of its own: a client sharing the notebook client's session would share its socket
    # identity, and the kernel would route the notebook's replies here.
    kc = km.client(session=Session(key=km.session.key, signature_scheme=km.session.signature_scheme))
    kc.start_channels()
    try:
        if wait_ready:
            await kc.wait_for_ready(timeout=timeout)
        msg_id = kc.execute(code, silent=True, store_history=False)
        while True:
            reply = await kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if reply["content"].get("status") != "ok":
            raise SetupFailed(f"the pooled kernel refused its set-up: {reply['content'].get('ename')}: "
                              f"{reply['content'].get('evalue')}")
    finally:
        kc.stop_channels()


async def _move_into_run(km, cwd: str, env: dict[str, str], timeout: float) -> None:
    # No wait_for_ready: the notebook's client has just seen the kernel ready, and ZMQ queues the
    # request until this shell socket connects. Waiting again would cost its 0.2 s IOPub flush.
    await silent_execute(km, setup_code(cwd, env), timeout)


class DirEngEngine(NBClientEngine):
    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, km=None, run_cwd=None, run_env=None,
                                 start_timeout=60, **kwargs):
        if km is None:
            return super().execute_managed_notebook(nb_man, kernel_name, start_timeout=start_timeout, **kwargs)
        if run_cwd is None or run_env is None:
            raise SetupFailed("a pooled kernel needs the run's cwd and environment")

        async def on_start(**_):
            await _move_into_run(km, str(run_cwd), dict(run_env), float(start_timeout))

        # papermill hands `km` and the hook to its notebook client: it then uses the started kernel
        # (and, not owning it, leaves its shutdown to the runner).
        return super().execute_managed_notebook(nb_man, kernel_name, start_timeout=start_timeout, km=km,
                                                on_notebook_start=on_start, **kwargs)
