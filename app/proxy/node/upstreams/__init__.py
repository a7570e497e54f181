"""Upstream adapters: one per wire format, all streaming :data:`UpstreamEvent` values."""

from __future__ import annotations

import httpx

from app.proxy.config import ProxySettings, UpstreamSettings
from app.proxy.node.upstreams.anthropic import AnthropicUpstream
from app.proxy.node.upstreams.base import Upstream
from app.proxy.node.upstreams.gemini import GeminiUpstream
from app.proxy.node.upstreams.offline import OfflineDemoUpstream
from app.proxy.node.upstreams.openai import OpenAIUpstream


def build_upstream(name: str, config: UpstreamSettings, settings: ProxySettings, client: httpx.AsyncClient) -> Upstream:
    """The adapter for one configured upstream; its API key is read from the environment here."""
    if config.kind == "offline":
        return OfflineDemoUpstream(name, tokens_per_second=settings.offline_tokens_per_second)
    assert config.base_url is not None  # filled in by UpstreamSettings for every HTTP kind
    if config.kind == "anthropic":
        return AnthropicUpstream(
            name, config.base_url, config.api_key(), client, default_max_tokens=settings.max_completion_tokens
        )
    if config.kind == "gemini":
        return GeminiUpstream(name, config.base_url, config.api_key(), client)
    return OpenAIUpstream(name, config.base_url, config.api_key(), client)
