"""The model broker: routes each lane's requests to providers under a validated policy.

`policy` (format, validation, hash), `budget` (estimates, ledger, usage log), `broker`
(routing, fallback, retries, data rules) and `providers` (OpenAI-compatible, Anthropic).
Importing this package is light: httpx loads only when an HTTP provider is built.
"""

from .broker import Attempt, Broker, BrokerError
from .policy import Policy, PolicyError, PolicyIssue, default_policy, load_policy, schema_path, validate_policy
from .providers.base import Provider, ProviderError

__all__ = ["Attempt", "Broker", "BrokerError", "Policy", "PolicyError", "PolicyIssue", "Provider",
           "ProviderError", "default_policy", "load_policy", "schema_path", "validate_policy"]
