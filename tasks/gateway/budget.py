"""A study's spend cap, shared by its calls (see `Budget`)."""

from __future__ import annotations

import threading

from offramp.errors import BudgetExceeded


class Budget:
    """A spend cap in USD, shared by the calls of one study. Before a call is made its worst case
    (every character of the prompt a token, all `max_tokens` generated) is reserved; after it,
    the reservation is replaced by the real cost. So the cap is not exceeded unless a provider
    bills more than the worst case (reports more tokens): then the real cost is counted, every
    later call is refused, and `overshoot_usd` says by how much.
    `held_usd` is set aside for later work (the held-out confirmation of the front): calls are
    refused once they would eat into it, until it is released. `max_usd=None`: no cap, the
    spend is only counted."""

    def __init__(self, max_usd: float | None, spent_usd: float = 0.0, held_usd: float = 0.0) -> None:
        if max_usd is not None and max_usd < 0:
            raise ValueError("a spend cap must be >= 0 USD")
        self.max_usd = max_usd
        self.spent_usd = spent_usd
        self.held_usd = held_usd
        self.reserved_usd = 0.0
        self.exhausted = False
        self._lock = threading.Lock()

    @property
    def overshoot_usd(self) -> float:
        return 0.0 if self.max_usd is None else max(0.0, self.spent_usd - self.max_usd)

    def release_hold(self) -> None:
        """The held reserve becomes spendable (the search is over); the cap may be reached again."""
        with self._lock:
            self.held_usd = 0.0
            self.exhausted = False

    def reserve(self, usd: float) -> None:
        with self._lock:
            if self.max_usd is not None and self.spent_usd + self.reserved_usd + usd > self.max_usd - self.held_usd:
                self.exhausted = True
                raise BudgetExceeded(
                    f"spend cap ${self.max_usd:.4f} reached: spent ${self.spent_usd:.4f}, in flight "
                    f"${self.reserved_usd:.4f}, held for the test phase ${self.held_usd:.4f}, next call may cost "
                    f"up to ${usd:.6f}"
                )
            self.reserved_usd += usd

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        with self._lock:
            self.reserved_usd -= reserved_usd
            self.spent_usd += actual_usd

    def grant(self, share: float = 1.0) -> float | None:
        """Set aside `share` of what is left for work done elsewhere (a task in another process,
        with its own `Budget(grant)`); `settle(grant, spent)` when it returns. The grants in flight
        never add up to more than the cap. None: no cap."""
        if self.max_usd is None:
            return None
        with self._lock:
            amount = max(0.0, (self.max_usd - self.held_usd - self.spent_usd - self.reserved_usd) * share)
            self.reserved_usd += amount
            return amount



