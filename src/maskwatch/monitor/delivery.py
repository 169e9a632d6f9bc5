"""Alert delivery: webhook (HTTP POST of JSON), MQTT and a local command, off the frame loop.

The frame loop stores an event and puts its id on a bounded queue (never waiting); one worker thread
delivers it to every sink. A failed delivery stays pending in the store and is retried every
``retry_interval`` seconds; when the queue is full the id is not queued (counted in ``dropped``) but the
event is stored, so the retry pass delivers it later. Nothing is lost and nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
import time
from collections import Counter
from typing import Protocol

from maskwatch.monitor.config import CommandConfig, MqttConfig, WatchConfig, WebhookConfig
from maskwatch.monitor.store import Event, EventStore

log = logging.getLogger("maskwatch")

MAX_BACKOFF = 30.0


class Sink(Protocol):
    name: str

    def send(self, event: dict) -> None:
        """Deliver one event or raise (any exception is a failed attempt)."""

    def close(self) -> None: ...


class WebhookSink:
    """POST the event as JSON; a 2xx answer is delivered. Retries with exponential backoff inside one attempt."""

    name = "webhook"

    def __init__(self, config: WebhookConfig, stop: threading.Event) -> None:
        import httpx

        self.config = config
        self.stop = stop
        self.client = httpx.Client(timeout=config.timeout, headers=config.headers)

    def send(self, event: dict) -> None:
        delay = self.config.backoff
        for attempt in range(self.config.retries + 1):
            try:
                response = self.client.post(self.config.url, json=event)
                if 200 <= response.status_code < 300:
                    return
                error = f"HTTP {response.status_code}"
            except Exception as exc:  # httpx's connect/read errors: the receiver is down or slow
                error = f"{type(exc).__name__}: {exc}"
            if attempt == self.config.retries or self.stop.wait(delay):
                raise RuntimeError(error)
            delay = min(MAX_BACKOFF, delay * 2)

    def close(self) -> None:
        self.client.close()


class MqttSink:
    """Publish the event as JSON on ``topic/<source>/<rule>`` with paho-mqtt; connects (and reconnects) in the
    background, so a broker that is down only fails the attempt."""

    name = "mqtt"

    def __init__(self, config: MqttConfig) -> None:
        import paho.mqtt.client as mqtt

        self.config = config
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"maskwatch-{os.getpid()}-{id(self):x}")
        if config.username:
            self.client.username_pw_set(config.username, config.password)
        self.client.reconnect_delay_set(1, 30)
        self.client.connect_async(config.host, config.port, keepalive=30)
        self.client.loop_start()

    def send(self, event: dict) -> None:
        deadline = time.monotonic() + self.config.timeout
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError(f"MQTT broker {self.config.host}:{self.config.port} not connected")
            time.sleep(0.05)
        topic = f"{self.config.topic}/{event['source']}/{event['rule']}"
        info = self.client.publish(topic, json.dumps(event), qos=self.config.qos)
        info.wait_for_publish(timeout=self.config.timeout)
        if not info.is_published():
            raise RuntimeError(f"MQTT publish not acknowledged (rc {info.rc})")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class CommandSink:
    """Run a local program with the event as JSON on stdin and in ``$MASKWATCH_EVENT``; exit 0 is delivered."""

    name = "command"

    def __init__(self, config: CommandConfig) -> None:
        self.config = config

    def send(self, event: dict) -> None:
        text = json.dumps(event)
        try:
            done = subprocess.run(
                self.config.argv,
                input=text,
                text=True,
                capture_output=True,
                timeout=self.config.timeout,
                env={**os.environ, "MASKWATCH_EVENT": text},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{self.config.argv[0]}: {exc}") from None
        if done.returncode != 0:
            raise RuntimeError(f"{self.config.argv[0]} exited with {done.returncode}: {done.stderr.strip()[:200]}")

    def close(self) -> None:
        pass


def make_sinks(config: WatchConfig, stop: threading.Event) -> list[Sink]:
    sinks: list[Sink] = []
    if config.webhook is not None:
        sinks.append(WebhookSink(config.webhook, stop))
    if config.mqtt is not None:
        sinks.append(MqttSink(config.mqtt))
    if config.command is not None:
        sinks.append(CommandSink(config.command))
    return sinks


class DeliveryWorker:
    """The bounded queue and the thread that empties it into the sinks."""

    def __init__(
        self,
        store: EventStore,
        sinks: list[Sink],
        queue_size: int = 1000,
        retry_interval: float = 30.0,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.sinks = {s.name: s for s in sinks}
        self.queue: queue.Queue[int] = queue.Queue(maxsize=queue_size)
        self.retry_interval = retry_interval
        self.stop_event = stop_event or threading.Event()
        """Set when the run ends: a webhook waiting between retries gives up at once (the event stays pending)."""
        self.draining = threading.Event()
        self.delivered: Counter = Counter()
        self.failed: Counter = Counter()
        self.dropped = 0
        """Event ids not queued because the queue was full (the events are stored and retried later)."""
        self.on_result = None  # optional callback(sink, ok) for metrics
        self._thread = threading.Thread(target=self._run, name="maskwatch-delivery", daemon=True)

    def start(self) -> DeliveryWorker:
        self._thread.start()
        return self

    def submit(self, event: Event) -> None:
        """Hand an event to the worker; never blocks the caller."""
        if not self.sinks:
            return
        try:
            self.queue.put_nowait(event.id)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("alert queue full: %d deliveries postponed to the retry pass", self.dropped)

    def pending(self) -> int:
        return len(self.store.pending(list(self.sinks)))

    def _run(self) -> None:
        next_retry = time.monotonic() + self.retry_interval
        while not self.stop_event.is_set():
            try:
                event_id = self.queue.get(timeout=0.2)
            except queue.Empty:
                event_id = None
            if event_id is not None:
                self._deliver(event_id, only_pending=True)
            elif self.draining.is_set():  # the run ended: one last pass over what failed, then stop
                self._retry_pending()
                break
            if time.monotonic() >= next_retry:
                self._retry_pending()
                next_retry = time.monotonic() + self.retry_interval
        self.store.close()

    def _retry_pending(self) -> None:
        for event_id in sorted({e for e, _ in self.store.pending(list(self.sinks))}):
            if self.stop_event.is_set():
                return
            self._deliver(event_id, only_pending=True)

    def _deliver(self, event_id: int, only_pending: bool) -> None:
        event = self.store.get(event_id)
        if event is None:  # removed by retention meanwhile
            return
        state = self.store.delivery_state(event_id)
        payload = event.to_dict()
        for name, sink in self.sinks.items():
            if only_pending and state.get(name, False):
                continue
            try:
                sink.send(payload)
            except Exception as exc:
                self.failed[name] += 1
                self.store.mark(event_id, name, str(exc) or type(exc).__name__)
                log.warning("alert %d to %s failed (kept, will retry): %s", event_id, name, exc)
                ok = False
            else:
                self.delivered[name] += 1
                self.store.mark(event_id, name, None)
                ok = True
            if self.on_result is not None:
                self.on_result(name, ok)

    def close(self, drain_seconds: float = 10.0) -> None:
        """Deliver what is queued (up to ``drain_seconds``), then stop; anything left stays pending in the store."""
        self.draining.set()
        self._thread.join(timeout=drain_seconds)
        self.stop_event.set()
        self._thread.join(timeout=5.0)
        for sink in self.sinks.values():
            try:
                sink.close()
            except Exception as exc:  # a sink that cannot close cleanly must not hide the run's summary
                log.warning("closing %s: %s", sink.name, exc)
