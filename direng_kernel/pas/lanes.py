"""The lane registry: every lane PAS can run, and where its files are.

In the style of papermill's `engines.py`: a `Lane` record per lane and one registry,
`registry`, that `register()`s lanes, looks them up by id (an unknown id is one line naming
the lanes there are and the closest match) and lists them. Whatever needs to know about a
lane asks here: the orchestrator (which lanes exist, which are idempotent and so re-queued
after a lost worker), the executor (notebook, limits, gates, policy route), the allowlist and
gates loaders (which file a lane's allowlist or gates come from), PAS health.

    registry.get("narrative")            → Lane(id, notebook, allowlist, gates, route, idempotent, …)
    registry.ids()                       → the built-in lanes in `models.LANE_IDS` order, then user lanes
    registry.register(Lane(...))         → a lane with files anywhere
    registry.register_folder(path)       → every `<lane>.ipynb` in a lane folder

**Built-in lanes** are `models.LANE_IDS` (their policy route names `models.LANE_ROUTES`) in
the packaged `lanes/` folder. All but `code-impl` are idempotent.

**Lane folders** hold `<lane>.ipynb`, `allowlists/<lane>.yaml` and `gates/<lane>.yaml`. The
search path is the `DIRENG_LANES_PATH` entries (`os.pathsep`-separated, read at every lookup),
then the folders given to `register_folder()`, then the built-in folder. Each file of a lane is
the first one on the path, so a folder can override a built-in lane or just one of its files. A
notebook in a folder that is not a built-in lane is a user lane: route name = its id, not
idempotent (a lost run fails rather than runs twice); register a `Lane.in_folder(...)` record
to say otherwise.

Records given to `register()` win over folder lanes of the same id (`replace=True` to replace a
registered one or shadow a built-in).
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional

from ..errors import DirEngError, NotFoundError
from ..models import LANE_IDS, LANE_ROUTES

LANE_ID_RE = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # bounded: an id becomes a file name
LANES_PATH_ENV = "DIRENG_LANES_PATH"
#: Built-in lanes whose lost run is not re-run: code-impl patches a worktree and may call a model.
NOT_IDEMPOTENT = frozenset({"code-impl"})


class UnknownLane(DirEngError):
    """A lane id the registry does not know (a 400: the caller named it)."""


class LaneNotFound(NotFoundError):
    """A known lane whose notebook is nowhere on the lane search path."""


class LaneNotebookError(DirEngError):
    """A lane notebook that cannot run: unreadable, or without a `parameters` cell."""


def check_parameters_cell(nb_path: Path) -> None:
    """The notebook reads and has a cell tagged `parameters` (papermill injects after it)."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception as exc:  # noqa: BLE001 — any unreadable notebook is a clear lane error
        raise LaneNotebookError(f"lane notebook {nb_path} is not a valid notebook: {exc}") from exc
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise LaneNotebookError(f"lane notebook {nb_path} has no cell tagged 'parameters'")


def builtin_folder() -> Path:
    """The built-in lanes: the packaged `direng_kernel/lanes` if it exists, else `<repo>/lanes`."""
    here = Path(__file__).resolve()
    packaged = here.parents[1] / "lanes"
    return packaged if packaged.is_dir() else here.parents[2] / "lanes"


def env_folders() -> list[Path]:
    """The `DIRENG_LANES_PATH` folders, in order."""
    return [Path(p).expanduser() for p in os.environ.get(LANES_PATH_ENV, "").split(os.pathsep) if p]


def _first(folders: Iterable[Path], *relpaths: str) -> Optional[Path]:
    for folder in folders:
        for rel in relpaths:
            path = Path(folder) / rel
            try:
                if path.is_file():
                    return path
            except OSError:  # a name the file system refuses is simply not there
                continue
    return None


@dataclass(frozen=True)
class Lane:
    """One lane: what PAS runs, under which rules, and how PEX and the broker treat it.

    `allowlist`/`gates` None: the lane has no such file (no allowlist fails the lane when it is
    checked; no gates means nothing to pass). `limits` overrides entries of the allowlist's
    `limits` (timeout_s, memory_mb, cpu_s, max_parallel). `route` is the broker policy's name
    for the lane (default: the id). `folders` is the search path the files were found on (for
    messages). A record only says where things are: `allowlist.lane_allowlist`/`lane_limits`,
    `gates.read_gates` and `executor.check_lane` read them."""

    id: str
    notebook: Path
    allowlist: Optional[Path] = None
    gates: Optional[Path] = None
    route: str = ""
    idempotent: bool = False
    limits: Optional[Mapping[str, int]] = None
    folders: tuple[Path, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not re.match(LANE_ID_RE, self.id):
            raise DirEngError(f"bad lane id {self.id!r} (lowercase letters, digits, '-' and '_')")
        object.__setattr__(self, "notebook", Path(self.notebook))
        for name in ("allowlist", "gates"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if not self.route:
            object.__setattr__(self, "route", self.id)

    @classmethod
    def in_folder(cls, folder: str | Path, lane_id: str, **fields) -> "Lane":
        """The lane laid out in one lane folder: `<lane>.ipynb`, `allowlists/<lane>.yaml`,
        `gates/<lane>.yaml` (a missing allowlist or gates file is None)."""
        folder = Path(folder).expanduser()
        return cls(id=lane_id, notebook=folder / f"{lane_id}.ipynb",
                   allowlist=_first([folder], f"allowlists/{lane_id}.yaml"),
                   gates=_first([folder], f"gates/{lane_id}.yaml", f"gates/{lane_id}.yml"),
                   folders=(folder,), **fields)


class LaneRegistry:
    """The lanes PAS knows: built-in ones, lane folders, and registered records."""

    def __init__(self, builtin: Optional[Path] = None, use_env: bool = True):
        self._builtin = builtin
        self._use_env = use_env
        self._records: dict[str, Lane] = {}
        self._folders: list[Path] = []
        self._lock = threading.Lock()

    # -- registering --------------------------------------------------------------------
    def register(self, lane: Lane, *, replace: bool = False) -> Lane:
        """Add a lane record; a second record of an id, or one shadowing a built-in lane, needs
        `replace=True`."""
        if not isinstance(lane, Lane):
            raise TypeError(f"register() takes a Lane, not {type(lane).__name__}")
        with self._lock:
            if not replace and (lane.id in self._records or lane.id in LANE_IDS):
                raise DirEngError(f"lane {lane.id!r} is already registered (replace=True to replace it)")
            self._records[lane.id] = lane
        return lane

    def unregister(self, lane_id: str) -> None:
        with self._lock:
            self._records.pop(lane_id, None)

    def register_folder(self, folder: str | Path) -> Path:
        """Put a lane folder on the search path (after `DIRENG_LANES_PATH`, before the built-in
        folder): each `<lane>.ipynb` in it is a lane, and its files override built-in ones."""
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise DirEngError(f"lane folder {path} is not a directory")
        with self._lock:
            if path not in self._folders:
                self._folders.append(path)
        return path

    def unregister_folder(self, folder: str | Path) -> None:
        path = Path(folder).expanduser().resolve()
        with self._lock:
            if path in self._folders:
                self._folders.remove(path)

    # -- looking up ---------------------------------------------------------------------
    def folders(self) -> list[Path]:
        """The lane search path: `DIRENG_LANES_PATH`, registered folders, the built-in folder."""
        return [*(env_folders() if self._use_env else []), *self._folders, self._builtin or builtin_folder()]

    def find_file(self, *relpaths: str) -> Optional[Path]:
        """The first of `relpaths` in the first folder of the search path that has one."""
        return _first(self.folders(), *relpaths)

    def ids(self) -> list[str]:
        """Every lane id: the built-in lanes (in `models.LANE_IDS` order), registered records,
        then folder lanes in search-path order."""
        out = dict.fromkeys(LANE_IDS)
        out.update(dict.fromkeys(self._records))
        for folder in self.folders():
            try:
                notebooks = sorted(folder.glob("*.ipynb"))
            except OSError:
                continue
            out.update(dict.fromkeys(p.stem for p in notebooks if re.match(LANE_ID_RE, p.stem) and p.is_file()))
        return list(out)

    def __contains__(self, lane_id: object) -> bool:
        return isinstance(lane_id, str) and lane_id in self.ids()

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def get(self, lane_id: str) -> Lane:
        """The lane record; UnknownLane (with the closest id) for an id that is no lane."""
        record = self._records.get(lane_id)
        if record is not None:
            return record
        folders = self.folders()
        if isinstance(lane_id, str) and re.match(LANE_ID_RE, lane_id):
            notebook = _first(folders, f"{lane_id}.ipynb")
            if notebook is not None or lane_id in LANE_IDS:
                if notebook is None:
                    raise LaneNotFound(f"unknown lane {lane_id!r}: no {lane_id}.ipynb in "
                                       f"{', '.join(map(str, folders))}")
                return Lane(id=lane_id, notebook=notebook,
                            allowlist=_first(folders, f"allowlists/{lane_id}.yaml"),
                            gates=_first(folders, f"gates/{lane_id}.yaml", f"gates/{lane_id}.yml"),
                            route=LANE_ROUTES.get(lane_id, lane_id),
                            idempotent=lane_id in LANE_IDS and lane_id not in NOT_IDEMPOTENT,
                            folders=tuple(folders))
        raise UnknownLane(unknown_lane_message(lane_id, self.ids()))

    def lanes(self) -> list[Lane]:
        """Every lane's record (a lane whose notebook is missing is left out)."""
        out = []
        for lane_id in self.ids():
            try:
                out.append(self.get(lane_id))
            except DirEngError:
                continue
        return out

    def idempotent(self) -> set[str]:
        """The lanes whose interrupted runs are re-queued (reconciliation's `idempotent_lanes`)."""
        return {lane.id for lane in self.lanes() if lane.idempotent}

    def routes(self) -> dict[str, str]:
        """Lane id → broker policy route name, for every lane."""
        return {lane.id: lane.route for lane in self.lanes()}

    def extra_routes(self) -> list[str]:
        """Route names of lanes beyond the built-in ones (the broker's `extra_lanes`)."""
        builtin = set(LANE_ROUTES.values())
        return sorted({r for r in self.routes().values() if r not in builtin})

    def allowlist_path(self, lane: str) -> tuple[Optional[Path], list[Path]]:
        """Where a name's allowlist is (`chat` too, which is no lane) and the folders searched."""
        record = self._records.get(lane)
        if record is not None:
            return record.allowlist, list(record.folders)
        folders = self.folders()
        return _first(folders, f"allowlists/{lane}.yaml"), folders

    def gates_path(self, lane: str) -> Optional[Path]:
        """A lane's gates file, or None (no gates)."""
        record = self._records.get(lane)
        if record is not None:
            return record.gates
        return self.find_file(f"gates/{lane}.yaml", f"gates/{lane}.yml")


def unknown_lane_message(lane_id: object, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(str(lane_id), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown lane {lane_id!r}; lanes: {', '.join(known)}{hint}"


#: The registry every component uses (the papermill `papermill_engines` of lanes).
registry = LaneRegistry()


__all__ = ["LANES_PATH_ENV", "LANE_ID_RE", "Lane", "LaneNotFound", "LaneNotebookError", "LaneRegistry",
           "UnknownLane", "builtin_folder", "check_parameters_cell", "env_folders", "registry",
           "unknown_lane_message"]
