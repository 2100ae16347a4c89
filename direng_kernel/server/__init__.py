"""The Jupyter server extension: one shared `Engine` behind a token-protected REST API.

The server hosts the index, its refresh daemon, DirEng and the model broker once; notebooks,
kernels, the CLI and the magics talk to it over `/direng/api/…` (see `docs/api.yaml`).
Kernels started by the server find it through `DIRENG_SERVER_URL` / `DIRENG_TOKEN`, which the
extension puts in the server's environment once the port is bound. Jupyter finds the extension
through `direng_kernel._jupyter_server_extension_points`.
"""
