"""JupyterHub with DirEng Workbench in every user's server (docs/deploy.md, "JupyterHub").

    jupyterhub -f docs/deploy/jupyterhub_config.py

Each user gets a single-user Jupyter server (`jupyterhub-singleuser`, from the environment
DirEng is installed in) with the DirEng server extension on. That server indexes the user's
own folder into the user's own store (`<notebook_dir>/.direng`: index, tasks, runs, passports),
signs its DirEng tokens with the user's own keys (`~/.local/share/jupyter/direng/keys`) and runs
delegated lanes headless in its PAS workers, so nothing is shared between users unless you
point them at a shared PEX database (`DIRENG_PEX_DB`, docs/deploy.md).

DirEng's eight scopes become JupyterHub custom scopes, `custom:direng:index:read` and so on,
generated here from `direng_kernel.models.SCOPES`. Inside a user's server a request that
JupyterHub authenticated gets exactly the DirEng scopes its token holds for that server:
every user holds all eight on their own servers (the `user` role below) and their browser
session carries them (`oauth_client_allowed_scopes`); an API token carries what it was issued
with. The authenticator and spawner are JupyterHub's defaults (PAM, local processes): change
them for your site. tests/test_jupyterhub.py loads this file and overrides only the ports,
paths, authenticator and spawner.
"""

import sys
from pathlib import Path

from direng_kernel.models import SCOPES
from direng_kernel.security.scopes import hub_scope

c = get_config()  # noqa: F821 — provided by JupyterHub when it loads this file

BIN = Path(sys.executable).parent  # the environment JupyterHub (and DirEng) is installed in

# -- the proxy: the PyPI `configurable-http-proxy` (a Python implementation, no Node.js needed),
#    installed beside JupyterHub; the npm package of the same name works the same way
c.ConfigurableHTTPProxy.command = [str(BIN / "configurable-http-proxy")]

# -- single-user servers: Jupyter Server with the DirEng extension
c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
# Installing direng-workbench enables the extension (etc/jupyter/jupyter_server_config.d); the
# user's server indexes and serves the user's folder, and delegated lanes run headless in its
# own PAS workers (papermill, sandboxed as everywhere else).
c.Spawner.args = ["--DirEngExtension.run_tasks=True"]
c.Spawner.notebook_dir = "~"  # the per-user root DirEng indexes; its store is ~/.direng
c.Spawner.default_url = "/lab"  # JupyterLab, with the DirEng panel
# JupyterHub passes almost nothing of its own environment on; DirEng's servers need a PATH (git,
# bubblewrap for lanes) and honour the shared services a site sets: a task database, a chroma
# server for the vectors, a Dask scheduler for the lanes (docs/deploy.md).
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "JUPYTERHUB_SINGLEUSER_APP",
                      "DIRENG_PEX_DB", "DIRENG_PEX_SCHEMA", "DIRENG_VECTORS", "DIRENG_EXECUTOR", "DIRENG_SANDBOX"]
c.Spawner.http_timeout = 120  # the first start loads the engine and may build the index

# -- DirEng's scopes as JupyterHub custom scopes, one per entry of models.SCOPES
c.JupyterHub.custom_scopes = {
    hub_scope(scope): {"description": f"DirEng: {description}"} for scope, description in SCOPES.items()
}

# Every user holds every DirEng scope on their own servers (`!user`: the role's own user) ...
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", *(f"{hub_scope(scope)}!user" for scope in SCOPES)]},
    # ... and, as an example of a narrower grant, a reviewer may search alice's code and read her
    # tasks, nothing more (uncomment and name real users):
    # {"name": "direng-reviewer", "users": ["bob"],
    #  "scopes": ["access:servers!user=alice", "custom:direng:index:read!user=alice",
    #             "custom:direng:tasks:read!user=alice"]},
]

# ... and the user's browser session (the OAuth token a server gets when its user logs in) may
# use them: JupyterHub gives that token the part of these scopes its user holds, here the eight
# DirEng scopes filtered to the user's own servers. (A list, not a callable: JupyterHub 6.1
# passes this setting to the server's environment as it is.)
c.Spawner.oauth_client_allowed_scopes = [hub_scope(scope) for scope in SCOPES]
