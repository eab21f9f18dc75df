"""KV caches for batched prefill and decode: a layer that grows in place inside a buffer it
owns (transformers' DynamicLayer concatenates, a copy of the whole cache at every step), and the
per-layer (keys, values) lists the batcher moves between prompts and batches."""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (B, H_kv, T, d) keys and values


class GrowingLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """A cache layer over a buffer with room to grow: appending writes in place and hands out a
    view, where ``DynamicLayer`` concatenates (a copy of the whole cache at every step)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        rows, heads, length, dim = keys.shape
        capacity = max(capacity, length)
        self._k = keys.new_zeros(rows, heads, capacity, dim)
        self._v = values.new_zeros(rows, heads, capacity, values.shape[-1])
        self._k[:, :, :length] = keys
        self._v[:, :, :length] = values
        self._n = length
        self.device = keys.device
        self.is_initialized = True
        self._view()

    def _view(self) -> None:
        self.keys = self._k[:, :, : self._n]
        self.values = self._v[:, :, : self._n]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._n + key_states.shape[-2]
        if end > self._k.shape[-2]:
            grow = max(end, 2 * self._k.shape[-2]) - self._k.shape[-2]
            self._k = torch.cat([self._k, _room(self._k, grow)], dim=2)
            self._v = torch.cat([self._v, _room(self._v, grow)], dim=2)
        self._k[:, :, self._n : end] = key_states
        self._v[:, :, self._n : end] = value_states
        self._n = end
        self._view()
        assert self.keys is not None and self.values is not None
        return self.keys, self.values

    def truncate(self, length: int) -> None:
        self._n = min(self._n, length)
        self._view()


def _room(buffer: torch.Tensor, n: int) -> torch.Tensor:
    rows, heads, _, dim = buffer.shape
    return buffer.new_zeros(rows, heads, n, dim)


def growing_cache(kv: KV, capacity: int) -> Cache:
    return Cache(layers=[GrowingLayer(k, v, capacity) for k, v in kv])


def output_cache(out: Any) -> Cache:
    """The cache a forward pass returned: ``out.cache`` (transformers 5.x's name; reading
    ``past_key_values`` warns that it is deprecated), else ``out.past_key_values``."""
    cache = getattr(out, "cache", None)
    found: Cache = cache if cache is not None else out.past_key_values
    return found


def cache_kv(cache: Cache) -> KV:
    out = []
    for layer in cache.layers:
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        assert keys is not None and values is not None
        out.append((keys, values))
    return out


def row_of(kv: KV, r: int, pad: int) -> KV:
    """Row ``r`` of a batch's cache, without its left padding."""
    return [(k[r : r + 1, :, pad:], v[r : r + 1, :, pad:]) for k, v in kv]


class Preallocated(GrowingLayer):  # type: ignore[no-untyped-call]
    """A GrowingLayer around a buffer that already holds ``length`` positions."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        DynamicLayer.__init__(self)  # type: ignore[no-untyped-call]
        self._k, self._v, self._n = keys, values, length
        self.device = keys.device
        self.is_initialized = True
        self._view()
