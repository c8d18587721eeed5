"""The heartbeat of a run's leases: while steps compute, every lease the run holds is renewed
every TTL/3 on the ledger's clock, so a computation longer than the TTL keeps its partitions;
a holder that stops (paused, partitioned away) stops renewing, its leases expire and another
run may take them over — and the fencing tokens then refuse whatever the old holder tries to
publish when it wakes up."""

from __future__ import annotations

import threading

from backfiller.ledger import Lease, LeaseBook

__all__ = ["Heartbeat"]


class Heartbeat:
    """Renews the leases handed to :meth:`hold` until :meth:`drop`; :meth:`lost` says whether
    a renewal found a lease taken over or released."""

    def __init__(self, leases: LeaseBook, ttl_seconds: float) -> None:
        self._leases = leases
        self._ttl = ttl_seconds
        self._held: set[Lease] = set()
        self._lost: set[Lease] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return self._ttl / 3

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._held.add(lease)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat, name="backfiller-lease-heartbeat", daemon=True
                )
                self._thread.start()

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._held.discard(lease)
            self._lost.discard(lease)

    def lost(self, lease: Lease) -> bool:
        with self._lock:
            return lease in self._lost

    def beat(self) -> int:
        """Renew every held lease once; return how many were renewed."""
        with self._lock:
            held = [lease for lease in self._held if lease not in self._lost]
        renewed = 0
        for lease in held:
            if self._leases.renew(lease, self._ttl):
                renewed += 1
            else:
                with self._lock:
                    if lease in self._held:
                        self._lost.add(lease)
        return renewed

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a failed renewal is retried at the next beat; fencing
                continue  # still refuses a late publish if the lease expires meanwhile

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.interval + 5)
