"""Admission control for chat streams: a bounded priority queue in front of the nodes' capacity.

Every reply is one LLM stream through a paid proxy node, and the nodes together run at most
``capacity`` streams at once. ``admit()`` hands a fan a slot when one is free; otherwise the fan
waits in a queue, hears their position and an estimated wait whenever either changes, and gets the
slot when their turn comes. A full queue refuses at once, with a time to retry::

    async def queued(waiting: Waiting) -> None:
        await socket.send_json({"type": "queued", "position": waiting.position, "eta_s": waiting.eta_s})

    try:
        async with admission.admit(Ticket(fan, band, est_tokens), on_wait=queued) as slot:
            async for chunk in stream:
                ...
            slot.tokens_used = usage.completion_tokens
    except AdmissionRefused as refused:
        await socket.send_json({"type": "error", "error": refused.reason, "retry_after_s": refused.retry_after_s})

Cancelling the caller at any point is safe: a waiting ticket leaves the queue, a held slot is
released, and that cleanup finishes even if the caller is cancelled again.

**Order.** Bands first (``Band``: the avatar's creator, then holders of many keys, then other
holders); inside a band, by arrival, pushed back by the tokens the fan was served recently
(``fairness_delay_s``), so fairness is counted in tokens, not in messages, and nobody starves
inside a band. Bands are strict: a band waits while any ticket of a sooner band does. A waiter's
position and estimate only fall as the queue drains; they rise only when a ticket that sorts
sooner arrives.

**Estimated wait.** ``estimate_wait_s`` combines the streams in service (how long each has run)
with the mean duration of the last ``SAMPLE_WINDOW`` completed streams.

**Backends.** ``MemoryAdmission`` serves one process; ``RedisAdmission`` shares one queue and one
capacity among every worker. They only store and move tickets atomically; ordering, estimates,
fairness and metrics are this module's shared code, so both behave the same.

The package: ``queue`` (the shared core), ``memory`` and ``redis_queue`` (the backends), ``lua/`` (the Redis
backend's scripts). What the rest of the app uses is re-exported here.
"""

from app.chat.admission.memory import (
    MemoryAdmission,
)
from app.chat.admission.queue import (
    IN_FLIGHT,
    QUEUE_DEPTH,
    REFUSALS,
    AdmissionPolicy,
    AdmissionQueue,
    AdmissionRefused,
    Band,
    Load,
    QueueFull,
    Slot,
    Ticket,
    TicketExpired,
    Waiting,
    band_for,
    estimate_wait_s,
    order_score,
)
from app.chat.admission.redis_queue import (
    RedisAdmission,
)

__all__ = [
    "IN_FLIGHT",
    "QUEUE_DEPTH",
    "REFUSALS",
    "AdmissionPolicy",
    "AdmissionQueue",
    "AdmissionRefused",
    "Band",
    "Load",
    "MemoryAdmission",
    "QueueFull",
    "RedisAdmission",
    "Slot",
    "Ticket",
    "TicketExpired",
    "Waiting",
    "band_for",
    "estimate_wait_s",
    "order_score",
]
