"""The process's one local model, shared by the proxy's local engine, the eval worker and
``/model/bias``.

Each of them used to load its own copy (about 0.6 GB of float32 weights each). Now the first one
to ask loads it, under a lock, and everyone after gets the same object; ``salience serve`` starts
the load at start-up (``SALIENCE_PRELOAD_MODEL``), so that ``/readyz`` can say when it is done.
A failed load is reported, and tried again on the next use (the file may have arrived since).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from salience.model.local import LocalModel

log = logging.getLogger("salience.shared_model")


class SharedModel:
    def __init__(
        self,
        path: str | None,
        dtype: str | None = None,
        on_load: Callable[[], None] | None = None,
        device: str | None = None,
    ) -> None:
        """``dtype`` and ``device``: None for the defaults (``$SALIENCE_DEVICE``, else the GPU if
        there is one; float32 on the CPU, bfloat16 on CUDA)."""
        self.path = path
        self.on_load = on_load  # called once per successful load (the service counts them)
        self.dtype = dtype
        self.device = device
        self._lock = threading.Lock()
        self._model: LocalModel | None = None
        self._state = "not loaded"
        self._error: str | None = None
        self._load_s: float | None = None

    @property
    def loaded(self) -> LocalModel | None:
        return self._model

    def get(self) -> LocalModel:
        """The model, loaded on first call (blocks; call from a worker thread)."""
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                self._state, self._error = "loading", None
                started = time.perf_counter()
                try:
                    from salience.model.local import LocalModel

                    self._model = LocalModel.load(self.path, self.dtype, self.device)
                except Exception as error:
                    self._state, self._error = "failed", f"{type(error).__name__}: {error}"
                    log.error("loading the local model failed: %s", self._error)
                    raise
                self._load_s = time.perf_counter() - started
                self._state = "ready"
                # the model's objects live as long as the process: out of the collector's
                # reach, a full collection no longer walks them (100-300 ms with the GIL held,
                # which every request waits on)
                gc.freeze()
                if self.on_load is not None:
                    self.on_load()
            return self._model

    async def aget(self) -> LocalModel:
        """``get`` from the event loop, without blocking it."""
        if self._model is not None:
            return self._model
        return await asyncio.to_thread(self.get)

    def start_loading(self) -> threading.Thread:
        """Load in a background thread (start-up); errors are kept for ``status``."""

        def load() -> None:
            # A failure is reported by status(); the next use tries again.
            with contextlib.suppress(Exception):
                self.get()

        thread = threading.Thread(target=load, name="salience-model-load", daemon=True)
        thread.start()
        return thread

    def status(self) -> tuple[bool, str]:
        """``(ready, detail)`` for ``/readyz``."""
        where = self.path or "the embedded SmolLM2-135M-Instruct"
        if self._model is not None:
            weights = str(self._model.model.dtype).removeprefix("torch.")
            return (
                True,
                f"{where}: loaded ({weights} on {self._model.device}, in {self._load_s:.1f} s)",
            )
        if self.path is not None and not os.path.exists(self.path):
            return False, f"{self.path}: missing"
        if self._state == "loading":
            return False, f"{where}: loading"
        if self._state == "failed":
            return False, f"{where}: failed to load ({self._error})"
        return False, f"{where}: not loaded yet"
