"""The local engine: generation on the model salience runs itself, shared by the proxy's local
chat, ``/model/bias`` and the page.

The model is the process's shared one (``service.shared_model``: SALIENCE_MODEL_PATH, or the
embedded default), loaded in a worker thread, so the event loop never blocks on torch. One
generation runs at a time (two cores share it badly); a bounded number may wait, and one more
is refused (``Busy``). A generation stops at the next token when ``stop`` is set (a client that
went away). The engine takes typed values (``Sampling``): requests are parsed at the edge.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from salience.markup import Conversation
from salience.markup.errors import SalienceError

from .shared_model import SharedModel

if TYPE_CHECKING:
    from salience.model.local import Generation, LocalModel
    from salience.model.methods import Method


class Busy(Exception):
    """Too many local generations waiting."""


class Slot:
    """One admitted generation's place: given back exactly once, on every way out.

    ``with engine.slot() as slot:`` gives it back when the block ends, however it ends (an
    answer, an error of any kind, a client gone). A stream that outlives the block takes it
    over with ``slot.hand_off()``, which returns the release for the stream's own end; calling
    it twice is harmless."""

    def __init__(self, engine: LocalEngine) -> None:
        self._engine = engine
        self._released = False
        self._handed_off = False

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._handed_off:
            self.release()

    def hand_off(self) -> Callable[[], None]:
        self._handed_off = True
        return self.release

    def release(self) -> None:
        with self._engine._count_lock:
            if self._released:
                return
            self._released = True
            self._engine._waiting -= 1


class ModelUnavailableError(SalienceError):
    """The local model could not be loaded (its file, its device, memory)."""

    code = "model-unavailable"
    status = 503
    title = "Model unavailable"


@dataclass(frozen=True)
class Sampling:
    """How to generate: at most ``max_tokens`` new tokens (the engine caps it), greedy at
    temperature 0, else seeded."""

    max_tokens: int | None = None
    temperature: float = 0.0
    seed: int = 0


class LocalEngine:
    def __init__(self, shared: SharedModel, max_waiting: int, max_tokens: int) -> None:
        self.shared = shared  # the process's one model, shared with the eval worker
        self.max_waiting = max_waiting
        self.max_tokens = max_tokens
        self._run_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._waiting = 0

    @property
    def loaded(self) -> bool:
        return self.shared.loaded is not None

    async def model(self) -> LocalModel:
        """The model (loaded on first use); ``ModelUnavailableError`` if it cannot be."""
        try:
            return await self.shared.aget()
        except SalienceError:
            raise
        except Exception as error:
            raise ModelUnavailableError(f"the local model is not available: {error}") from error

    def slot(self) -> Slot:
        """A place for one more generation (a context manager), or ``Busy``."""
        with self._count_lock:
            if self._waiting >= self.max_waiting:
                raise Busy(f"{self._waiting} local generations are already waiting")
            self._waiting += 1
        return Slot(self)

    @property
    def waiting(self) -> int:
        """Generations admitted and not yet given back (running or waiting their turn)."""
        return self._waiting

    def deltas(
        self,
        lm: LocalModel,
        conversation: Conversation,
        method: Method,
        sampling: Sampling,
        stop: threading.Event,
    ) -> Iterator[str | Generation]:
        """The answer's text piece by piece (whole characters), then its ``Generation``
        (iterated in a worker thread, one token at a time; ``whole`` takes the answer)."""
        asked = sampling.max_tokens
        cap = self.max_tokens if asked is None else min(max(1, asked), self.max_tokens)
        with self._run_lock:
            stream = lm.stream(
                conversation,
                method,
                max_new_tokens=cap,
                seed=sampling.seed,
                temperature=sampling.temperature,
                stop=stop,
            )
            yield from stream.text_deltas()
            result = stream.result
        assert result is not None
        yield result


def whole(deltas: Iterator[str | Generation]) -> Generation:
    """The ``Generation`` at the end of ``LocalEngine.deltas`` (the pieces are dropped)."""
    *_, last = deltas
    assert not isinstance(last, str), "the engine's deltas end with the generation"
    return last
