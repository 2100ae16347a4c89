"""Quality gates: the KPI conditions a lane run must meet to succeed.

Each lane has a gates file, `<lane folder>/gates/<lane>.yaml` (the lane registry, `pas.lanes`,
says which folder):

    lane: code-impl
    gates:
      - {kpi: tests_failed, op: "==", value: 0}
      - {kpi: lint_errors, op: "<=", value: 0}

After a lane notebook finishes, the executor evaluates its KPIs (`kpis.jsonl`) against them;
any failed gate fails the run with the reasons. A KPI the lane did not report fails its gate
(a gate is never passed by omission). A lane without a gates file has no gates. With
`retries: N` (default 0) a failed gate escalates the task to the user instead, for its first N
runs: they may retry, change the lane or cancel.
"""

from __future__ import annotations

import math
import operator
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import DirEngError
from .lanes import registry as lane_registry

OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class GatesError(DirEngError):
    """A gates file that cannot be read or is malformed."""


class Gate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kpi: str
    op: Literal["==", "!=", "<", "<=", ">", ">="]
    value: float
    description: str = ""

    def __str__(self) -> str:
        return f"{self.kpi} {self.op} {self.value:g}"

    def check(self, kpis: dict) -> Optional[str]:
        """None when the gate passes, else why it failed."""
        if self.kpi not in kpis:
            return f"{self}: KPI {self.kpi!r} was not reported by the lane"
        try:
            actual = float(kpis[self.kpi])
        except (TypeError, ValueError):
            return f"{self}: KPI {self.kpi!r} is not a number ({kpis[self.kpi]!r})"
        if math.isnan(actual) or not OPS[self.op](actual, self.value):
            return f"{self}: got {self.kpi} = {actual:g}"
        return None


class GateResult(BaseModel):
    passed: bool
    failures: list[str] = Field(default_factory=list)


class Gates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lane: str
    gates: list[Gate] = Field(default_factory=list)
    retries: int = Field(default=0, ge=0)  # runs whose failed gates escalate instead of failing
    source: Optional[str] = None  # the file it was read from (None: no gates file)

    def evaluate(self, kpis: dict) -> GateResult:
        failures = [why for gate in self.gates if (why := gate.check(kpis)) is not None]
        return GateResult(passed=not failures, failures=failures)


def parse_gates(text: str, lane: str, source: str = "<string>") -> Gates:
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise GatesError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise GatesError(f"{source}: expected a mapping with `lane` and `gates`")
    data.setdefault("lane", lane)
    if data["lane"] != lane:
        raise GatesError(f"{source}: is for lane {data['lane']!r}, not {lane!r}")
    try:
        return Gates.model_validate({**data, "source": source})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GatesError(f"{source}: {where}: {first['msg']}") from None


def read_gates(path: Optional[Path], lane: str) -> Gates:
    """The gates in `path` for `lane` (none when path is None)."""
    if path is None:
        return Gates(lane=lane)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise GatesError(f"cannot read {path}: {exc}") from None
    return parse_gates(text, lane, str(path))


def load_gates(lane: str) -> Gates:
    """The lane's gates: the gates file the lane registry (`pas.lanes`) finds for it, none
    when it has no gates file."""
    return read_gates(lane_registry.gates_path(lane), lane)
