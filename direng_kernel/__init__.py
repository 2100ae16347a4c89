"""DirEng Workbench: a Jupyter-native engineering assistant over a code index.

Importing the package is cheap: components load on first use. `%load_ext direng_kernel`
registers the `%direng` magics; the Jupyter server finds the extension through
`_jupyter_server_extension_points`.
"""

from ._version import __version__

__all__ = ["__version__", "load_ipython_extension"]


def load_ipython_extension(ipython):
    from .magics import load_ipython_extension as _load

    _load(ipython)


def _jupyter_server_extension_points():
    """The one definition: `jpserver_extensions={"direng_kernel": True}` finds the app here."""
    from .server.app import DirEngExtension

    return [{"module": "direng_kernel.server.app", "app": DirEngExtension}]
