"""salience in front of an LLM call: the request rewriting shared by the OpenAI-compatible proxy
(``service.api.routes.openai``) and the in-process httpx transports."""

from .rewrite import Options, Rewrite, RewriteError, rewrite
from .transport import AsyncSalienceTransport, SalienceTransport

__all__ = [
    "AsyncSalienceTransport",
    "Options",
    "Rewrite",
    "RewriteError",
    "SalienceTransport",
    "rewrite",
]
