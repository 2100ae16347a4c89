"""DirEng Workbench: a Jupyter-native engineering assistant over a code index.

Importing the package is cheap: components load on first use. `%load_ext direng_kernel`
registers the `%direng` magics; the Jupyter server finds the extension through
`_jupyter_server_extension_points`.
"""

__version__ = "0.1.0"


def load_ipython_extension(ipython):
    from .magics import load_ipython_extension as _load

    _load(ipython)


def _jupyter_server_extension_points():
    from .server.app import DirEngExtension

    return [{"module": "direng_kernel.server.app", "app": DirEngExtension}]
