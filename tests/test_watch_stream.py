"""``maskwatch watch`` end to end on a scripted camera: two minutes of people entering and leaving, served over
HTTP MJPEG on 127.0.0.1, through the real command, into a real webhook receiver (stopped mid-run and started
again) and a real mosquitto broker. The expected events and report rows are worked out from the script alone."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import pytest
from monitor_helpers import Mosquitto, MqttCollector, WebhookReceiver, mosquitto_binary, wait_for
from scripted_stream import DURATION, FPS, SCRIPT, MjpegServer, cast, encode_script, frame_times, visible

REPO = Path(__file__).resolve().parents[1]
NO_MASK_SECONDS = 4.0
BELOW, WINDOW_MIN, MIN_PEOPLE, COOLDOWN = 50.0, 0.5, 2, 60.0
INTERVAL = 30.0
MIN_HITS = 3
BAD = {"without_mask", "incorrect_mask"}


def expected_no_mask(labels: dict[str, str]) -> list[tuple[float, str]]:
    """(time, class) of each no-mask event: a person in a bad class for NO_MASK_SECONDS, once."""
    out = []
    for p in SCRIPT:
        first = p.enter
        if labels[p.name] in BAD and first + NO_MASK_SECONDS < p.leave - 1e-9:
            out.append((first + NO_MASK_SECONDS, labels[p.name]))
    return sorted(out)


def expected_compliance(labels: dict[str, str]) -> list[float]:
    """Times of low-compliance events: masked share of the people seen (3 frames or more so far) in the last
    WINDOW_MIN minutes below BELOW %, at least MIN_PEOPLE of them, COOLDOWN seconds apart."""
    times, last = [], None
    seen: Counter = Counter()
    last_seen: dict[str, float] = {}
    for t in frame_times():
        for p in SCRIPT:
            if visible(p, t):
                seen[p.name] += 1
                last_seen[p.name] = t
        people = [n for n, s in last_seen.items() if s >= t - WINDOW_MIN * 60 - 1e-9 and seen[n] >= MIN_HITS]
        if len(people) < MIN_PEOPLE:
            continue
        share = sum(labels[n] == "with_mask" for n in people) / len(people)
        if share * 100 < BELOW and (last is None or t - last >= COOLDOWN - 1e-9):
            times.append(t)
            last = t
    return times


def expected_rows(labels: dict[str, str]) -> list[dict]:
    rows = []
    times = frame_times()
    for k in range(int(DURATION // INTERVAL)):
        start, end = k * INTERVAL, (k + 1) * INTERVAL
        inside = [t for t in times if start - 1e-9 <= t < end - 1e-9]
        faces: Counter = Counter()
        people: Counter = Counter()
        for p in SCRIPT:
            frames = sum(visible(p, t) for t in inside)
            faces[labels[p.name]] += frames
            if frames:
                people[labels[p.name]] += 1
        rows.append({"frames": len(inside), "faces": faces, "people": people})
    return rows


@pytest.fixture(scope="module")
def scripted(shared_dir):
    from maskwatch.pipeline import Detector

    crops, labels = cast(Detector(detector="maskface"), shared_dir)
    return encode_script(crops), labels


@pytest.mark.slow
def test_watch_scripted_stream_alerts_reports_and_survives_a_webhook_outage(tmp_path, scripted):
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (Debian: apt-get install mosquitto)")
    frames, labels = scripted
    broker = Mosquitto(tmp_path)
    subscriber = MqttCollector(broker.port, "maskwatch/#")
    receiver = WebhookReceiver().start()
    config = tmp_path / "watch.toml"
    with MjpegServer(frames, speed=4.0) as camera:
        config.write_text(
            f"""
[[source]]
name = "door"
url = "{camera.url}"
detector = "maskface"   # pinned: the test needs faces found, not a particular default
fps = {FPS}
reconnects = 0
reconnect_delay = 0.2

[rules]
no_mask_seconds = {NO_MASK_SECONDS}
compliance_below = {BELOW}
compliance_window = {WINDOW_MIN}
compliance_min_people = {MIN_PEOPLE}
compliance_cooldown = {COOLDOWN}

[storage]
folder = "events"
clip_before = 1
clip_after = 1

[report]
path = "report.csv"
interval = {INTERVAL}

[webhook]
url = "{receiver.url}"
retries = 1
backoff = 0.2
timeout = 2

[mqtt]
port = {broker.port}

[delivery]
retry_interval = 0.5
"""
        )
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        process = subprocess.Popen(
            [sys.executable, "-m", "maskwatch", "watch", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            db = tmp_path / "events" / "events.sqlite3"
            wait_for(lambda: receiver.received, 240, "the first webhook event")
            receiver.stop()  # the receiver goes down: events keep coming and must not be lost
            stopped_at = time.time()

            def stored() -> int:
                if not db.is_file():
                    return 0
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as ro:
                    return ro.execute("SELECT COUNT(*) FROM events").fetchone()[0]

            wait_for(lambda: stored() >= 3, 240, "events raised while the webhook receiver is down")
            receiver.start()
            restarted_at = time.time()
            _, err = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
            receiver.stop()
    time.sleep(0.5)
    subscriber.close()
    broker.close()
    # the camera stopped at the end of the script: the source fails (exit 2) after the whole script was processed
    assert process.returncode == 2, err
    assert "door" in err and "600" in err, err

    want_no_mask = expected_no_mask(labels)
    want_compliance = expected_compliance(labels)
    assert want_no_mask and want_compliance  # the script exercises both rules
    with sqlite3.connect(tmp_path / "events" / "events.sqlite3") as db:
        events = db.execute("SELECT id, rule, source_time, class, track, snapshot FROM events ORDER BY id").fetchall()
        undelivered = db.execute("SELECT COUNT(*) FROM deliveries WHERE delivered IS NULL").fetchone()[0]
    no_mask = [(t, c) for _, rule, t, c, _, _ in events if rule == "no_mask"]
    compliance = [t for _, rule, t, _, _, _ in events if rule == "low_compliance"]
    assert [c for _, c in no_mask] == [c for _, c in want_no_mask]
    for (got, _), (want, _) in zip(no_mask, want_no_mask):
        assert got == pytest.approx(want, abs=0.01)
    assert len(compliance) == len(want_compliance)
    for got, want in zip(compliance, want_compliance):
        assert got == pytest.approx(want, abs=0.5)  # the rule waits for MIN_HITS frames of a new person
    tracks = [track for _, rule, _, _, track, _ in events if rule == "no_mask"]
    assert len(set(tracks)) == len(tracks)  # once per person
    for *_, snapshot in events:
        assert (tmp_path / "events" / snapshot).stat().st_size > 1000

    ids = [e[0] for e in events]
    webhook = [body for _, body in receiver.received]
    assert sorted(b["id"] for b in webhook) == ids  # every event, exactly once, none lost in the outage
    late = [when for when, body in receiver.received if when >= restarted_at]
    assert len(late) >= 2 and restarted_at > stopped_at  # the ones raised while it was down came after it returned
    assert {b["rule"] for b in webhook} == {"no_mask", "low_compliance"}
    mqtt = sorted(m["id"] for _, m in subscriber.messages)
    assert mqtt == ids
    assert {topic for topic, _ in subscriber.messages} == {
        "maskwatch/events/door/no_mask",
        "maskwatch/events/door/low_compliance",
    }
    assert undelivered == 0

    with (tmp_path / "report.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    want_rows = expected_rows(labels)
    assert len(rows) == len(want_rows)
    for got, want in zip(rows, want_rows):
        assert int(got["frames"]) == want["frames"]
        for label in ("with_mask", "without_mask"):
            assert int(got[f"people_{label}"]) == want["people"][label], (got, want)
            assert int(got[f"faces_{label}"]) == want["faces"][label], (got, want)
        people = sum(want["people"].values())
        assert float(got["compliance"]) == pytest.approx(want["people"]["with_mask"] / people, abs=1e-4)
    clips = sorted((tmp_path / "events" / "clips").glob("*.mp4"))
    assert len(clips) == len(events)
    capture = cv2.VideoCapture(str(clips[0]))
    frames_in_clip = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert abs(frames_in_clip - 2 * FPS) <= 2  # 1 s before and 1 s after the event, at the stream's 5 fps
