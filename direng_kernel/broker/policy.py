"""The model-broker policy: its pydantic model, validation, loading and hash.

Idea: the JSON Schema (`policy/model_broker.schema.json`, draft 2020-12) checks the *shape*
of a policy; `_semantic_issues` checks what a schema cannot express — references between
sections (routes → providers), fallback chains, budgets against each other, data rules
against provider exposure, credentials that look inline. Both report a JSON pointer per
issue so every surface (CLI, REST, the policy editor) can point at the offending field.

Nothing heavy is imported here: jsonschema loads only when validation runs.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..errors import DirEngError
from ..models import LANE_IDS, LANES, LaneOverride

log = logging.getLogger("direng.broker.policy")

SCHEMA_NAME = "model_broker.schema.json"
LOCAL_PROVIDER = "local"
LOCAL_MODEL = "retrieval"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 1

# Property names that would hold a credential inline; the schema forbids them on providers.
INLINE_KEY_FIELDS = frozenset({"api_key", "key", "apikey", "token", "secret", "password", "authorization"})
_ALWAYS_KEY_PREFIXES = ("sk-", "sk_")  # OpenAI / Anthropic style keys
_LONG_KEY_PREFIXES = ("xoxb-", "xoxp-", "ghp_", "gho_", "github_pat_", "glpat-", "AKIA", "AIza", "hf_", "gsk_", "xai-")


class PolicyError(DirEngError):
    """A policy file that cannot be used: missing, not JSON, or invalid (first issue shown)."""

    def __init__(self, message: str, issues: Optional[list["PolicyIssue"]] = None):
        super().__init__(message)
        self.issues = issues or []


class PolicyIssue(BaseModel):
    """One validation finding: where (RFC 6901 pointer, "" = the whole document), what, and which pass."""

    pointer: str
    message: str
    kind: Literal["schema", "semantic"]

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


# -- the model -----------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prices(_Strict):
    input_per_1k: float = 0.0
    output_per_1k: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens / 1000 * self.input_per_1k + output_tokens / 1000 * self.output_per_1k


class ProviderConfig(_Strict):
    type: Literal["local", "openai", "anthropic"]
    external: bool
    description: str = ""
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None  # the NAME of an environment variable, never the key
    prices: Prices = Field(default_factory=Prices)


class Route(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}"


class Budgets(_Strict):
    """Per-lane limits; None = unlimited. Per task = one task_id; per day = one UTC day."""

    tokens_per_task: Optional[int] = None
    money_per_task: Optional[float] = None
    tokens_per_day: Optional[int] = None
    money_per_day: Optional[float] = None


class DataRules(_Strict):
    may_see_secrets: bool = False
    may_see_pii: bool = False
    external_allowed: bool = True
    on_flagged: Literal["block", "redact"] = "block"


class Defaults(_Strict):
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    budgets: Budgets = Field(default_factory=Budgets)
    data: DataRules = Field(default_factory=DataRules)


class LanePolicy(_Strict):
    description: str = ""
    primary: Route
    fallbacks: list[Route] = Field(default_factory=list)
    timeout_s: Optional[float] = None
    retries: Optional[int] = None
    budgets: Optional[Budgets] = None
    data: Optional[DataRules] = None
    #: PEX escalates a task of this lane when PLMS's p90 duration is above this (seconds).
    escalate_p90_s: Optional[float] = None


class ResolvedLane(BaseModel):
    """A lane with the policy defaults filled in: what the broker actually applies."""

    name: str
    chain: list[Route]
    timeout_s: float
    retries: int
    budgets: Budgets
    data: DataRules
    escalate_p90_s: Optional[float] = None


def _merge(model: type[BaseModel], base: BaseModel, override: Optional[BaseModel]):
    """Field-wise merge: fields the lane sets explicitly (even to null) override the defaults."""
    if override is None:
        return base
    return model.model_validate({**base.model_dump(exclude_unset=True), **override.model_dump(exclude_unset=True)})


class Policy(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_ref: Optional[str] = Field(default=None, alias="$schema")
    version: Literal[1] = 1
    description: str = ""
    currency: str = "USD"
    defaults: Defaults = Field(default_factory=Defaults)
    providers: dict[str, ProviderConfig]
    lanes: dict[str, LanePolicy]
    #: Lane routing overrides learned from repeated misroutes (`plms/overrides.py`), first match first.
    lane_overrides: list[LaneOverride] = Field(default_factory=list)

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of the normalised policy (defaults filled, `$schema` left out).

        Two files that differ only in formatting, key order or spelled-out defaults hash alike.
        """
        # no overrides hashes as before the section existed: a policy's hash does not change with the format
        data = self.model_dump(mode="json", exclude={"schema_ref"} | (set() if self.lane_overrides else {"lane_overrides"}))
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def resolve(self, lane: str) -> Optional[ResolvedLane]:
        """The lane with defaults applied, or None when the policy does not configure it."""
        spec = self.lanes.get(lane)
        if spec is None:
            return None
        return ResolvedLane(
            name=lane,
            chain=[spec.primary, *spec.fallbacks],
            timeout_s=spec.timeout_s if spec.timeout_s is not None else self.defaults.timeout_s,
            retries=spec.retries if spec.retries is not None else self.defaults.retries,
            budgets=_merge(Budgets, self.defaults.budgets, spec.budgets),
            data=_merge(DataRules, self.defaults.data, spec.data),
            escalate_p90_s=spec.escalate_p90_s,
        )


def default_policy() -> Policy:
    """The embedded default: every lane served by the in-process `local` provider, offline, free."""
    route = {"provider": LOCAL_PROVIDER, "model": LOCAL_MODEL}
    return Policy.model_validate({
        "version": 1,
        "description": "Embedded default: every lane answered by the local provider (no network).",
        "currency": "USD",
        "providers": {LOCAL_PROVIDER: {"type": "local", "external": False,
                                       "description": "embedded, in-process; answers from the code index"}},
        "lanes": {lane: {"primary": dict(route)} for lane in LANES},
    })


# -- schema ----------------------------------------------------------------------------------

def schema_path() -> Path:
    """Where the JSON Schema lives: inside the installed package (`direng_kernel/policy/`, as the
    wheel ships it) if present, else the repository's `policy/` folder."""
    try:
        from importlib.resources import files

        candidate = files("direng_kernel") / "policy" / SCHEMA_NAME
        if candidate.is_file():
            return Path(str(candidate))
    except (ModuleNotFoundError, TypeError, OSError):  # pragma: no cover - exotic loaders
        pass
    return Path(__file__).resolve().parents[2] / "policy" / SCHEMA_NAME


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    path = schema_path()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PolicyError(f"policy schema not found at {path}") from exc


def pointer(*parts: Any) -> str:
    """RFC 6901 JSON pointer from path parts ("" for the document itself)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _schema_issue(err) -> PolicyIssue:
    """A jsonschema error as a PolicyIssue, pointing at the property concerned and never
    echoing a value that might be a credential."""
    path = list(err.absolute_path)
    message = err.message
    if err.validator == "required":
        m = re.match(r"^'(.+)' is a required property$", message)
        if m:
            path.append(m.group(1))
            message = "required property is missing"
    elif err.validator == "additionalProperties":
        names = re.findall(r"'([^']+)'", message.split("(", 1)[-1])
        if len(names) == 1:
            path.append(names[0])
            message = "unknown property" + (" (allowed: " + ", ".join(sorted(err.schema.get("properties", {})))
                                            + ")" if err.schema.get("properties") else "")
    if err.validator is None:  # a `false` subschema: jsonschema's message would echo the value
        message = "not allowed here"
    last = str(path[-1]) if path else ""
    in_provider = len(path) >= 3 and path[0] == "providers"
    if in_provider and last in INLINE_KEY_FIELDS:
        message = ("inline credentials are not allowed: put the key in an environment variable "
                   "and give that variable's NAME in `api_key_env`")
    elif in_provider and last == "api_key_env":
        message = "must be the NAME of an environment variable (letters, digits, underscores), not a key"
    elif in_provider and last == "external" and err.validator == "const":
        message = "a provider of type `local` is never external"
    return PolicyIssue(pointer=pointer(*path), message=message, kind="schema")


def _schema_issues(data: Any) -> list[PolicyIssue]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    issues, seen = [], set()
    for err in errors:
        issue = _schema_issue(err)
        if (issue.pointer, issue.message) not in seen:
            seen.add((issue.pointer, issue.message))
            issues.append(issue)
    return issues


# -- semantics -------------------------------------------------------------------------------

def looks_like_key(value: str) -> bool:
    """Whether a would-be environment-variable name is actually a credential."""
    v = value.strip()
    if v.startswith(_ALWAYS_KEY_PREFIXES) or v.lower().startswith("bearer "):
        return True
    if len(v) >= 20 and v.startswith(_LONG_KEY_PREFIXES):
        return True
    mixed = any(c.islower() for c in v) and any(c.isupper() for c in v) and any(c.isdigit() for c in v)
    return len(v) >= 32 and mixed


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _semantic_issues(data: dict, extra_lanes: Iterable[str] = ()) -> list[PolicyIssue]:
    """Checks across sections; defensive about shape (schema issues are reported separately).
    Lane names are the built-in routes (`models.LANES`) plus the caller's `extra_lanes`."""
    issues: list[PolicyIssue] = []
    known_lanes = [*LANES, *(lane for lane in extra_lanes if lane not in LANES)]

    def add(ptr: str, message: str) -> None:
        issues.append(PolicyIssue(pointer=ptr, message=message, kind="semantic"))

    providers = _dict(data.get("providers"))
    for pid, prov in providers.items():
        env = _dict(prov).get("api_key_env")
        if isinstance(env, str) and looks_like_key(env):
            add(pointer("providers", pid, "api_key_env"),
                "looks like a literal API key (value not shown); store the key in an environment "
                "variable and give that variable's NAME here")

    defaults = _dict(data.get("defaults"))
    default_budgets, default_data = _dict(defaults.get("budgets")), _dict(defaults.get("data"))
    _check_budgets(default_budgets, ("defaults", "budgets"), set(default_budgets), add)

    for lane, spec in _dict(data.get("lanes")).items():
        base = ("lanes", lane)
        if lane not in known_lanes:
            close = difflib.get_close_matches(lane, known_lanes, n=1)
            add(pointer(*base), f"unknown lane {lane!r}" + (f"; did you mean {close[0]!r}?" if close
                                                               else f"; known lanes: {', '.join(known_lanes)}"))
        spec = _dict(spec)
        rules = {**default_data, **_dict(spec.get("data"))}
        sensitive = [n for n in ("may_see_secrets", "may_see_pii") if rules.get(n) is True]
        fallbacks = spec.get("fallbacks") if isinstance(spec.get("fallbacks"), list) else []
        chain = [(("primary",), spec.get("primary"))] + [(("fallbacks", i), r) for i, r in enumerate(fallbacks)]
        seen: dict[tuple, str] = {}
        for where, route in chain:
            route = _dict(route)
            pid, model = route.get("provider"), route.get("model")
            if not isinstance(pid, str):
                continue
            here = pointer(*base, *where)
            key = (pid, model)
            if key in seen:
                what = "the primary route" if seen[key] == pointer(*base, "primary") else f"route {seen[key]}"
                add(here, f"fallback {pid}/{model} repeats {what}; a chain must not contain a route twice")
            else:
                seen[key] = here
            if pid not in providers:
                known = ", ".join(sorted(providers)) or "none"
                add(pointer(*base, *where, "provider"), f"unknown provider {pid!r} (defined: {known})")
                continue
            prov = _dict(providers[pid])
            if prov.get("external") is not True or prov.get("type") == "local":  # local+external: schema issue
                continue
            if sensitive:
                add(pointer(*base, *where, "provider"),
                    f"lane may see {' and '.join(s.removeprefix('may_see_') for s in sensitive)} "
                    f"({', '.join(sensitive)}) but provider {pid!r} is external")
            elif rules.get("external_allowed") is False:
                add(pointer(*base, *where, "provider"),
                    f"lane forbids external providers (data.external_allowed = false) but {pid!r} is external")
        lane_budgets = _dict(spec.get("budgets"))
        _check_budgets({**default_budgets, **lane_budgets}, (*base, "budgets"), set(lane_budgets), add)
    _check_overrides(data.get("lane_overrides"), [*LANE_IDS, *(lane for lane in extra_lanes if lane not in LANES)], add)
    return issues


def _check_overrides(overrides: Any, known: list[str], add) -> None:
    """Each override names a lane id there is (user lanes' route names are their ids), ids are
    unique, and one set of words does not send briefs to two lanes."""
    seen_ids: set[str] = set()
    seen_words: dict[frozenset, str] = {}
    for i, item in enumerate(overrides if isinstance(overrides, list) else []):
        item = _dict(item)
        lane, oid, words = item.get("lane"), item.get("id"), item.get("words")
        if isinstance(lane, str) and lane not in known:
            close = difflib.get_close_matches(lane, known, n=3, cutoff=0.3)
            add(pointer("lane_overrides", i, "lane"), f"unknown lane {lane!r}" + (
                f"; closest: {', '.join(close)}" if close else f"; lanes: {', '.join(known)}"))
        if isinstance(oid, str):
            if oid in seen_ids:
                add(pointer("lane_overrides", i, "id"), f"override id {oid!r} is used twice")
            seen_ids.add(oid)
        if isinstance(words, list) and all(isinstance(w, str) for w in words) and isinstance(lane, str):
            key = frozenset(words)
            if key in seen_words and seen_words[key] != lane:
                add(pointer("lane_overrides", i, "words"),
                    f"the words {sorted(key)} already send briefs to {seen_words[key]!r}")
            seen_words.setdefault(key, lane)


def _check_budgets(budgets: dict, base: tuple, own: set, add) -> None:
    """per-task > per-day is inconsistent (reported where one of the pair is set, i.e. `own`).
    Negative values are rejected by the schema (`minimum: 0`)."""
    for unit in ("tokens", "money"):
        task, day = f"{unit}_per_task", f"{unit}_per_day"
        if not (own & {task, day}):
            continue
        t, d = budgets.get(task), budgets.get(day)
        if _number(t) and _number(d) and 0 <= d < t:
            add(pointer(*base, task if task in own else day),
                f"{task} ({t:g}) exceeds {day} ({d:g}); a task could never spend its budget")


def validate_policy(data: Any, extra_lanes: Iterable[str] = ()) -> list[PolicyIssue]:
    """All schema issues, then all semantic issues; an empty list means the policy is valid.

    `extra_lanes`: route names the caller adds to the built-in ones (user lanes registered with
    PAS's lane registry); the broker itself knows only `models.LANES`."""
    if not isinstance(data, dict):
        return [PolicyIssue(pointer="", message="a policy must be a JSON object", kind="schema")]
    return _schema_issues(data) + _semantic_issues(data, extra_lanes)


# -- loading ---------------------------------------------------------------------------------

def read_policy_json(path: str | Path) -> Any:
    """The parsed JSON of a policy file; PolicyError (one line) if missing, unreadable or not JSON."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"policy file not found: {p}") from None
    except IsADirectoryError:
        raise PolicyError(f"policy path is a directory, not a file: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file {p}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{p}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def load_policy(path: str | Path, extra_lanes: Iterable[str] = ()) -> Policy:
    """Read, validate (schema + semantics) and build a Policy; PolicyError names the first issue.
    `extra_lanes` as for `validate_policy`."""
    data = read_policy_json(path)
    issues = validate_policy(data, extra_lanes)
    if issues:
        more = f" (and {len(issues) - 1} more issue{'s' if len(issues) > 2 else ''})" if len(issues) > 1 else ""
        raise PolicyError(f"invalid policy {path}: {issues[0]}{more}", issues)
    policy = Policy.model_validate(data)
    log.info("loaded policy %s (hash %s)", path, policy.hash[:12])
    return policy


def policy_for(path: str | Path | None, extra_lanes: Iterable[str] = ()) -> Policy:
    """The policy a process runs under: the file at `path` (validated: PolicyError names the
    first issue), or the embedded default when no file is configured. The one way the engine,
    the executor and a lane read it."""
    return load_policy(path, extra_lanes) if path else default_policy()
