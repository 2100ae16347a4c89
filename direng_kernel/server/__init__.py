"""The Jupyter server extension: one shared `Engine` behind a token-protected REST API.

The server hosts the index, its refresh daemon, DirEng and the model broker once; notebooks,
kernels, the CLI and the magics talk to it over `/direng/api/…` (see `docs/api.yaml`).
Kernels started by the server find it through `DIRENG_SERVER_URL` / `DIRENG_TOKEN`, which the
extension puts in the server's environment once the port is bound.
"""


def _jupyter_server_extension_points():
    from .app import DirEngExtension

    return [{"module": "direng_kernel.server.app", "app": DirEngExtension}]
