"""Injected faults for the emulators: a queue of faults tests inject (first matching one wins), then a random rate.
Each emulator has its own `Fault` type (what a fault can be for that service) and picks when a fault applies."""
from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class FaultQueue:
    """Thread-safe: tests inject from their own thread while the emulator serves requests."""

    def __init__(self, fault_type: Callable[..., Any], default_rate_faults: tuple[str, ...]) -> None:
        self._fault_type, self._default_rate_faults = fault_type, default_rate_faults
        self._lock = threading.Lock()
        self._queue: deque = deque()
        self._rate, self._rate_faults, self._random = 0.0, (), random.Random()

    def inject(self, kind: str, count: int = 1, **options) -> None:
        fault = self._fault_type(kind, **options)
        with self._lock:
            self._queue.extend([fault] * count)

    def set_rate(self, rate: float, faults: list[str] | None = None, seed: int | None = None, **options) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        chosen = tuple(self._fault_type(kind, **options) for kind in (faults or self._default_rate_faults))
        with self._lock:
            self._rate, self._rate_faults, self._random = rate, chosen, random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rate, self._rate_faults = 0.0, ()

    def state(self) -> dict:
        with self._lock:
            return {"queued": [asdict(f) for f in self._queue], "rate": self._rate,
                    "rate_faults": [asdict(f) for f in self._rate_faults]}

    def take(self, applies: Callable[[Any], bool] = lambda fault: True):
        """The first queued fault that applies (removed from the queue), else one of the rate's, else None."""
        with self._lock:
            for fault in self._queue:
                if applies(fault):
                    self._queue.remove(fault)
                    return fault
            candidates = [f for f in self._rate_faults if applies(f)]
            if candidates and self._random.random() < self._rate:
                return self._random.choice(candidates)
        return None


class EmulatorControls:
    """The control routes every emulator serves (`/_emulator/faults`, `/_emulator/requests`): the test knobs over
    HTTP (JSON). The emulator provides `faults`, `requests`, `inject`, `set_fault_rate` and `clear_faults`."""

    async def _faults_route(self, request: Request) -> Response:
        try:
            if request.method == "DELETE":
                self.clear_faults()
            elif request.method == "POST":
                spec = dict(await request.json())
                if "rate" in spec:
                    self.set_fault_rate(float(spec.pop("rate")), spec.pop("faults", None), spec.pop("seed", None), **spec)
                else:
                    self.inject(spec.pop("fault"), int(spec.pop("count", 1)), **spec)
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": f"bad fault specification: {exc}"}, 400)
        return JSONResponse(self.faults.state())

    async def _requests_route(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.requests.clear()
        return JSONResponse({"requests": self.requests})
