"""Small async helpers over nats-py's JetStream API: stream set-up, publishing that survives a
leader failover, and an ordered reader from a given stream sequence.

Exactly-once publishing rests on JetStream's de-duplication: every message carries a
``Nats-Msg-Id`` chosen by the caller, and a retry after a timeout or a failover reuses it, so a
message the old leader already stored is acknowledged again as a duplicate instead of being stored
twice. The stream's duplicate window must outlast a failover (5-8 s here); the default is 120 s.

This module imports only the standard library and ``nats``; nothing else of clearhouse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    StorageType,
    StreamConfig,
    StreamInfo,
)

MSG_ID_HEADER = "Nats-Msg-Id"

# JetStream error code of "no suitable peers for placement": the meta leader does not know
# enough servers to place a stream's replicas, as happens while peers are still joining.
NO_SUITABLE_PEERS = 10005

# Failures that mean "no answer yet" (leader election under way, a server gone, the client
# reconnecting), after which repeating the same request is safe.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncio.TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
)

StreamRecord = tuple[int, str, bytes, dict[str, str]]
T = TypeVar("T")


def _same_config(
    config: StreamConfig, subjects: Sequence[str], replicas: int, window: float
) -> bool:
    return (
        sorted(config.subjects or []) == sorted(subjects)
        and (config.num_replicas or 1) == replicas
        and abs((config.duplicate_window or 0.0) - window) < 1e-6
    )


def _is_transient(exc: Exception) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def _is_transient_or_unplaced(exc: Exception) -> bool:
    return _is_transient(exc) or (
        isinstance(exc, nats.js.errors.BadRequestError) and exc.err_code == NO_SUITABLE_PEERS
    )


async def _retry(
    request: Callable[[], Awaitable[T]],
    deadline: float,
    transient: Callable[[Exception], bool] = _is_transient,
) -> T:
    """Repeat ``request`` while it fails ``transient``-ly (a failover under way) until
    ``deadline`` (``time.monotonic()``); the last failure is raised after it."""
    while True:
        try:
            return await request()
        except Exception as exc:
            if not transient(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.25)


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: Sequence[str],
    replicas: int = 3,
    duplicate_window_s: float = 120.0,
    *,
    timeout_s: float = 30.0,
) -> StreamInfo:
    """Create the file-backed stream ``name`` or bring an existing one to the given subjects,
    replica count and duplicate window. Retries transient failures (no meta leader yet, too few
    servers known to place the replicas while peers are still joining) until ``timeout_s``;
    after that the last failure is raised."""

    async def attempt() -> StreamInfo:
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return await js.add_stream(
                StreamConfig(
                    name=name,
                    subjects=list(subjects),
                    num_replicas=replicas,
                    duplicate_window=duplicate_window_s,
                    storage=StorageType.FILE,
                )
            )
        if _same_config(info.config, subjects, replicas, duplicate_window_s):
            return info
        return await js.update_stream(
            info.config.evolve(
                subjects=list(subjects),
                num_replicas=replicas,
                duplicate_window=duplicate_window_s,
            )
        )

    return await _retry(attempt, time.monotonic() + timeout_s, _is_transient_or_unplaced)


async def publish_with_retry(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    msg_id: str,
    *,
    timeout_s: float = 2.0,
    attempts: int = 30,
    backoff_s: float = 0.25,
    expected_stream: str | None = None,
) -> PubAck:
    """Publish ``payload`` under ``msg_id`` and wait for the stream's acknowledgement, retrying
    transient failures with the same id, so the message is stored exactly once.

    ``ack.duplicate`` is true when the stream already held ``msg_id`` (an earlier attempt, or an
    earlier call, got through). Each attempt waits at most ``timeout_s``; after ``attempts``
    failures the last error is raised. Rejections by the stream (wrong expected stream, message
    too large, ...) are raised at once.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    attempt = 1
    while True:
        try:
            return await js.publish(
                subject,
                payload,
                timeout=timeout_s,
                stream=expected_stream,
                headers={MSG_ID_HEADER: msg_id},
            )
        except TRANSIENT_ERRORS:
            if attempt >= attempts:
                raise
        attempt += 1
        await asyncio.sleep(backoff_s)


async def iter_stream(
    js: JetStreamContext,
    stream: str,
    start_seq: int = 1,
    *,
    follow: bool = False,
    idle_timeout_s: float = 30.0,
    heartbeat_s: float = 1.0,
) -> AsyncIterator[StreamRecord]:
    """Yield ``(sequence, subject, data, headers)`` for the messages of ``stream`` from
    ``start_seq`` on, in stream order, with no gap and no repeat.

    Uses nats-py's ordered consumer: an ephemeral, in-memory, unacknowledged push consumer that
    the client recreates from the next expected sequence whenever it sees a gap or misses
    heartbeats (as when the server hosting it dies). Setting up the consumer is retried through
    a failover for up to ``idle_timeout_s``.

    Without ``follow`` the iteration ends after the stream's last message as of the call, and
    :class:`TimeoutError` is raised when a message still due does not arrive within
    ``idle_timeout_s``. With ``follow`` it keeps waiting for new messages until the caller stops
    iterating (``break`` or cancellation; use ``contextlib.aclosing`` to release the consumer
    at once).
    """
    if start_seq < 1:
        raise ValueError("stream sequences start at 1")
    deadline = time.monotonic() + idle_timeout_s
    info = await _retry(lambda: js.stream_info(stream), deadline)
    end_seq = info.state.last_seq
    if not follow and end_seq < start_seq:
        return
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
    )
    # An empty subject leaves the consumer without a filter: every message of the stream.
    sub = await _retry(
        lambda: js.subscribe(
            "",
            stream=stream,
            config=config,
            ordered_consumer=True,
            idle_heartbeat=heartbeat_s,
        ),
        deadline,
    )
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_timeout_s)
            except nats.errors.TimeoutError:
                if follow:
                    continue
                raise TimeoutError(
                    f"no message from stream {stream} within {idle_timeout_s} s"
                ) from None
            seq = msg.metadata.sequence.stream
            yield seq, msg.subject, msg.data, dict(msg.headers or {})
            if not follow and seq >= end_seq:
                return
    finally:
        try:
            await sub.unsubscribe()
        except nats.errors.Error:
            pass
