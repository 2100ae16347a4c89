"""JupyterHub's identity on a single-user server: which DirEng scopes a Hub token holds *here*.

On a single-user server (`jupyterhub-singleuser`), Jupyter's identity provider is JupyterHub's
`JupyterHubIdentityProvider`: it asks the Hub about the request's token or cookie (`HubOAuth`),
lets in only holders of one of this server's *access scopes* (`access:servers!server=alice/`,
`access:servers!user=alice`, from `$JUPYTERHUB_OAUTH_ACCESS_SCOPES`) and hands the handler a
`JupyterHubUser` whose `hub_user["scopes"]` are the token's expanded scopes. User A's token
never gets past that on user B's server.

DirEng's eight scopes are Hub custom scopes (`custom:direng:index:read`, ... see
`security/scopes.py`). The idea: a DirEng scope is held here when the token holds its custom
scope with one of this server's access filters, so `custom:direng:index:read!user=alice`
grants `index:read` on alice's servers only. That test is JupyterHub's own
`jupyterhub.services.auth.check_scopes` (the one the identity provider uses for access),
applied to `{custom:direng:S!F : S a DirEng scope, F a filter of an access scope}`; like Hub's
access check it does not resolve `!group=` filters into users (grant DirEng scopes per user or
server, or unfiltered).

A Hub user gets exactly the DirEng scopes its token holds here; none means every DirEng
endpoint is a 403. A token that carries a `custom:direng:*` scope DirEng does not know is
refused whole (`UnknownHubScopeError`): a misspelt grant is a configuration error to report,
not a scope to ignore. Requests that Jupyter authenticated without the Hub (a plain
`jupyter server`'s token, its browser session) keep every scope.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import DirEngError
from ..models import SCOPES
from ..security.scopes import HUB_PREFIX, from_hub_scope, hub_scope


class UnknownHubScopeError(DirEngError):
    """A JupyterHub token carries `custom:direng:*` scopes that are not DirEng scopes."""

    error_code = "unknown_hub_scope"

    def __init__(self, names: Iterable[str]):
        self.names = sorted(set(names))
        known = ", ".join(hub_scope(s) for s in SCOPES)
        super().__init__(f"the JupyterHub token carries unknown DirEng scope(s) {', '.join(self.names)} "
                         f"(known: {known}); ask the Hub's admin to fix the grant")


def hub_user_model(user) -> dict | None:
    """The Hub's model of the request's user (`JupyterHubUser.hub_user`), None for other users."""
    model = getattr(user, "hub_user", None)
    return model if isinstance(model, dict) else None


def access_filters(access_scopes: Iterable[str]) -> set[str]:
    """`!filter` suffixes ('' for none) of this server's access scopes: what "here" means."""
    return {("!" + scope.split("!", 1)[1]) if "!" in scope else "" for scope in access_scopes}


def hub_granted_scopes(model: dict, access_scopes: Iterable[str]) -> frozenset[str]:
    """The DirEng scopes a Hub user `model` holds on the server with `access_scopes`."""
    held = {name for name in model.get("scopes") or () if isinstance(name, str)}
    unknown = {name.split("!", 1)[0] for name in held if name.startswith(HUB_PREFIX) and from_hub_scope(name) is None}
    if unknown:
        raise UnknownHubScopeError(unknown)
    from jupyterhub.services.auth import check_scopes  # present wherever a JupyterHubUser exists

    # Only DirEng's names matter here; group filters cannot be resolved without the Hub's database
    # (check_scopes would warn on every request), so they grant nothing, as documented.
    ours = {name for name in held if name.startswith(HUB_PREFIX) and "!group=" not in name}
    wanted = {hub_scope(scope) + filt for scope in SCOPES for filt in access_filters(access_scopes)}
    return frozenset(from_hub_scope(name) for name in check_scopes(wanted, ours)) if wanted and ours else frozenset()


def server_access_scopes(identity_provider) -> frozenset[str]:
    """This server's access scopes, as JupyterHub's identity provider (its `HubAuth`) reads them."""
    hub_auth = getattr(identity_provider, "hub_auth", None)
    return frozenset(getattr(hub_auth, "access_scopes", None) or ())
