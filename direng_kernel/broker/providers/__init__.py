"""Provider adapters: one class per wire protocol, all behind the `Provider` protocol.

`base` is light (no httpx); `openai` and `anthropic` import httpx when a provider is built.
The embedded `local` provider lives with DirEng (`direng_kernel/direng/`) and reaches the
broker through a factory.
"""

from .base import Provider, ProviderError

__all__ = ["Provider", "ProviderError"]
