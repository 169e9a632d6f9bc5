"""Monitoring pieces on their own: config checks, rules, the event store, alert delivery, reports from ``detect``,
one failing source beside a working one, and the Ctrl-C summary of a live stream."""

from __future__ import annotations

import csv
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import moving_face_frames, run_cli, write_video
from monitor_helpers import WebhookReceiver, wait_for

from maskwatch.errors import InputError
from maskwatch.faces import Face
from maskwatch.monitor.config import RulesConfig, load_config, parse_config
from maskwatch.monitor.delivery import CommandSink, DeliveryWorker, WebhookSink
from maskwatch.monitor.intervals import IntervalCounter
from maskwatch.monitor.rules import LOW_COMPLIANCE, NO_MASK, RuleEngine
from maskwatch.monitor.store import EventStore

REPO = Path(__file__).resolve().parents[1]


def face(track: int, label: str, x: float = 0.0) -> Face:
    return Face((x, 0.0, x + 50.0, 60.0), label, 0.99, 0.9, {label: 0.99}, track)


# --- configuration -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[source]]\nname = 'a'\n", "source.0.url: Field required"),
        ("[[source]]\nname = 'a'\nurl = '0'\ncolour = 'red'\n", "source.0.colour: Extra inputs are not permitted"),
        ("[[source]]\nname = 'a'\nurl = '0'\n[[source]]\nname = 'a'\nurl = '1'\n", "'a' is used twice"),
        ("[rules]\nno_mask_seconds = 3\n", "source: Field required"),
        ("[[source]\nname = 'a'", "not valid TOML"),
        ("[[source]]\nname = 'a'\nurl = '0'\n[webhook]\nurl = 'ftp://x'\n", "webhook.url: String should match"),
    ],
)
def test_config_mistakes_are_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "watch.toml"
    path.write_text(text)
    with pytest.raises(InputError, match="watch.toml") as caught:
        load_config(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_sources_rules_change_only_the_keys_it_names():
    config = parse_config(
        {
            "source": [{"name": "a", "url": "0", "rules": {"no_mask_seconds": 2}}, {"name": "b", "url": "1"}],
            "rules": {"no_mask_seconds": 9, "compliance_below": 70},
        }
    )
    a, b = (config.rules_for(s) for s in config.sources)
    assert (a.no_mask_seconds, a.compliance_below) == (2, 70)
    assert (b.no_mask_seconds, b.compliance_below) == (9, 70)


def test_config_paths_are_relative_to_the_file_and_a_camera_index_stays_one(tmp_path):
    path = tmp_path / "site" / "watch.toml"
    path.parent.mkdir()
    path.write_text(
        "[[source]]\nname = 'cam'\nurl = 0\n[[source]]\nname = 'rec'\nurl = 'door.mp4'\n[report]\npath = 'r.csv'\n"
    )
    config = load_config(path, blur_faces=True)
    assert config.sources[0].url == "0"
    assert config.sources[1].url == str(path.parent.resolve() / "door.mp4")
    assert config.report.path == path.parent.resolve() / "r.csv"
    assert config.storage.folder == path.parent.resolve() / "maskwatch-events"
    assert config.storage.blur_faces


@pytest.mark.slow
def test_watch_cli_missing_file_is_one_line():
    done = run_cli("watch", "no-such-watch.toml", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: no-such-watch.toml: no such file"


# --- rules ---------------------------------------------------------------------------------------------------------


def test_no_mask_rule_fires_once_per_person_after_n_seconds_for_bare_and_wrongly_worn_masks():
    engine = RuleEngine(RulesConfig(no_mask_seconds=2.0))
    fired = []
    for i in range(60):  # 6 s at 10 fps: 1 masked, 2 bare, 3 wrongly worn from 1 s on, 4 bare for 1.5 s only
        t = i / 10
        faces = [face(1, "with_mask"), face(2, "without_mask", 100)]
        if t >= 1.0:
            faces.append(face(3, "incorrect_mask", 200))
        if t < 1.5:
            faces.append(face(4, "without_mask", 300))
        fired += [(a.t, a.rule, a.track_id, a.label) for a in engine.update(t, faces)]
    assert fired == [(2.0, NO_MASK, 2, "without_mask"), (3.0, NO_MASK, 3, "incorrect_mask")]


def test_no_mask_cooldown_holds_back_the_next_person_and_counts_it():
    engine = RuleEngine(RulesConfig(no_mask_seconds=0.5, no_mask_cooldown=10))
    fired = []
    for i in range(30):
        fired += engine.update(i / 10, [face(1, "without_mask"), face(2, "without_mask", 100)])
    assert [a.track_id for a in fired] == [1]
    assert engine.suppressed == 1


def test_compliance_rule_waits_for_enough_people_and_keeps_its_cooldown():
    rules = RulesConfig(
        no_mask_seconds=None, compliance_below=50, compliance_window=1, compliance_min_people=3, compliance_cooldown=30
    )
    engine = RuleEngine(rules)
    fired = []
    for i in range(0, 1000):  # 100 s at 10 fps; two bare people from the start, a masked one from 10 s
        t = i / 10
        faces = [face(1, "without_mask"), face(2, "without_mask", 100)]
        if t >= 10:
            faces.append(face(3, "with_mask", 200))
        fired += [(round(a.t, 1), a.rule) for a in engine.update(t, faces)]
    # 3 people from 10.2 s (the third has 3 frames), 1/3 masked: below 50 % at once, then every 30 s
    assert fired == [(10.2, LOW_COMPLIANCE), (40.2, LOW_COMPLIANCE), (70.2, LOW_COMPLIANCE)]


def test_interval_counter_counts_each_person_once_per_interval_in_its_usual_class():
    counter = IntervalCounter("cam", interval=1.0)
    rows = []
    for i in range(25):  # 2.5 s at 10 fps; track 9 seen twice only: a flicker, not a person
        faces = [face(1, "with_mask"), face(2, "without_mask" if i % 5 else "with_mask", 100)]
        if i in (3, 4):
            faces.append(face(9, "without_mask", 300))
        rows += counter.add(i / 10, faces)
    rows.append(counter.flush(2.5))
    assert [r.frames for r in rows] == [10, 10, 5]
    assert rows[0].people == {"with_mask": 1, "without_mask": 1}
    assert rows[0].faces == {"with_mask": 12, "without_mask": 10}
    assert rows[2].compliance == 0.5


# --- store and delivery ----------------------------------------------------------------------------------------------


def test_store_keeps_events_and_files_within_the_retention_limits(tmp_path):
    store = EventStore(tmp_path / "ev", ["webhook"])
    for i in range(5):
        store.add("cam", float(i), NO_MASK, i, "without_mask", {}, b"\xff\xd8jpeg")
    with sqlite3.connect(store.path) as db:  # the two oldest are 40 days old
        db.execute("UPDATE events SET time = time - 40 * 86400 WHERE id <= 2")
    assert store.apply_retention(keep_days=30, keep_events=None) == 2
    assert store.apply_retention(keep_days=30, keep_events=2) == 1
    assert [e.id for e in store.events()] == [5, 4]
    assert sorted(p.name for p in (tmp_path / "ev" / "snapshots").iterdir()) == ["00000004.jpg", "00000005.jpg"]
    assert store.pending(["webhook"]) == [(4, "webhook"), (5, "webhook")]


@pytest.mark.slow
def test_webhook_failures_are_retried_until_delivered_and_counted(tmp_path):
    receiver = WebhookReceiver(fail_first=4).start()
    store = EventStore(tmp_path, ["webhook"])
    stop = threading.Event()
    from maskwatch.monitor.config import WebhookConfig

    sink = WebhookSink(WebhookConfig(url=receiver.url, retries=1, backoff=0.05), stop)
    worker = DeliveryWorker(store, [sink], retry_interval=0.2, stop_event=stop).start()
    try:
        event = store.add("cam", 1.0, NO_MASK, 7, "without_mask", {"seconds": 5})
        worker.submit(event)
        wait_for(lambda: receiver.received, 10, "the webhook delivery")
    finally:
        worker.close()
        receiver.stop()
    assert [body["track"] for _, body in receiver.received] == [7]
    assert worker.failed["webhook"] == 2 and worker.delivered["webhook"] == 1  # 2 attempts of 2 tries each
    assert store.pending(["webhook"]) == []


@pytest.mark.slow
def test_a_full_queue_drops_deliveries_visibly_and_the_retry_pass_delivers_them(tmp_path):
    log = tmp_path / "sent.log"
    from maskwatch.monitor.config import CommandConfig

    sink = CommandSink(
        CommandConfig(
            argv=[
                sys.executable,
                "-c",
                f"import sys, time; time.sleep(0.2); open({str(log)!r}, 'a').write(sys.stdin.read() + '\\n')",
            ]
        )
    )
    store = EventStore(tmp_path / "ev", ["command"])
    worker = DeliveryWorker(store, [sink], queue_size=1, retry_interval=0.3).start()
    t0 = time.perf_counter()
    for i in range(6):
        worker.submit(store.add("cam", float(i), NO_MASK, i, "without_mask", {}))
    submit_seconds = time.perf_counter() - t0
    try:
        wait_for(lambda: not store.pending(["command"]), 30, "every event delivered")
    finally:
        worker.close()
    assert submit_seconds < 0.5  # the caller never waited for the slow command
    assert worker.dropped >= 3
    assert sorted(int(line.split('"track": ')[1].split(",")[0]) for line in log.read_text().splitlines()) == list(
        range(6)
    )


# --- detect: report, status, Ctrl-C --------------------------------------------------------------------------------


@pytest.mark.slow
def test_detect_report_has_one_row_per_interval(tmp_path, astronaut_bgr):
    video = write_video(tmp_path / "walk.mp4", moving_face_frames(astronaut_bgr, count=12), fps=10)
    report = tmp_path / "counts.csv"
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "FORCE_COLOR": "1", "COLUMNS": "160"}  # a terminal
    done = subprocess.run(
        [sys.executable, "-m", "maskwatch", "detect", str(video), "--report", str(report), "--report-interval", "0.5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"walk\.mp4: \d+ frames, [\d.]+ fps, people ", done.stderr)  # the live status line
    with report.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["frames"]) for r in rows] == [5, 5, 2]
    assert [float(r["start"]) for r in rows] == [0.0, 0.5, 1.0]
    label = next(k[7:] for k, v in rows[0].items() if k.startswith("people_") and v == "1")
    assert all(r["people"] == "1" and r[f"people_{label}"] == "1" for r in rows)
    assert all(int(r[f"faces_{label}"]) == int(r["frames"]) for r in rows)
    assert float(rows[0]["compliance"]) == (1.0 if label == "with_mask" else 0.0)
    assert f"wrote {report} (3 row(s))" in done.stderr


@pytest.mark.slow
def test_detect_on_a_live_stream_keeps_its_people_and_report_after_ctrl_c(tmp_path, astronaut_bgr):
    from scripted_stream import MjpegServer

    frames = [cv2.imencode(".jpg", f)[1].tobytes() for f in moving_face_frames(astronaut_bgr, count=40)]
    frames = frames + frames[::-1]
    report = tmp_path / "live.csv"
    with MjpegServer(frames * 50, fps=10, speed=1.0) as camera:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "maskwatch",
                "detect",
                camera.url,
                "--report",
                str(report),
                "--report-interval",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
        )
        try:
            wait_for(lambda: report.is_file() and len(report.read_text().splitlines()) >= 3, 60, "two report rows")
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, err
    assert "interrupted; outputs closed" in err
    assert " fps, people " not in err  # no status line in a pipe
    row = next(line for line in err.splitlines() if "_mask" in line).replace("│", " ").split()
    assert row[-1] == "1", err  # "people (tracked)": the one person, not "-"
    with report.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 3  # the interval in progress at Ctrl-C was written too
    assert rows[0]["start"].endswith("Z")  # a live stream's rows are on the clock
    assert all(r["people"] == "1" for r in rows[:-1])


# --- one failing source, privacy -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_failing_source_leaves_the_others_running(tmp_path, astronaut_bgr):
    from maskwatch.monitor.watch import Monitor

    video = write_video(tmp_path / "door.mp4", moving_face_frames(astronaut_bgr, count=20), fps=10)
    config = parse_config(
        {
            "source": [
                {"name": "gone", "url": "http://127.0.0.1:9/none.mjpg", "reconnects": 1, "reconnect_delay": 0.1},
                {"name": "door", "url": str(video), "detector": "maskface"},
            ],
            "rules": {"no_mask_seconds": 0.5, "no_mask_classes": ["without_mask", "with_mask"]},
            "storage": {"folder": str(tmp_path / "ev"), "blur_faces": True},
        }
    )
    monitor = Monitor(config).start()
    monitor.wait()
    summary = monitor.stop()
    by_name = {s.name: s for s in summary.sources}
    assert by_name["gone"].status == "failed" and "unreachable" in by_name["gone"].error
    assert by_name["gone"].reconnects == 1
    assert by_name["door"].status == "ended" and by_name["door"].frames == 20
    assert by_name["door"].events == 1 and sum(by_name["door"].people.values()) == 1
    # privacy: the stored snapshot's face is blurred (little detail left inside the box)
    event = EventStore(tmp_path / "ev").events()[0]
    snapshot = cv2.imread(str(tmp_path / "ev" / event.snapshot))
    frame = moving_face_frames(astronaut_bgr, count=20)[round(event.source_time * 10)]
    x1, y1, x2, y2 = (round(v) for v in event.details["box"])
    inside, original = snapshot[y1 + 8 : y2 - 8, x1 + 8 : x2 - 8], frame[y1 + 8 : y2 - 8, x1 + 8 : x2 - 8]
    assert cv2.Laplacian(inside, cv2.CV_64F).var() < 0.2 * cv2.Laplacian(original, cv2.CV_64F).var()
    assert np.abs(snapshot[:100, :30].astype(int) - frame[:100, :30]).mean() < 3  # the rest as it was (JPEG)


def test_blur_faces_hides_the_face_and_leaves_the_rest():
    from maskwatch.media.draw import blur_faces

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    out = blur_faces(image, [face(1, "without_mask", 100)])
    assert np.array_equal(out[:, 160:], image[:, 160:]) and np.array_equal(out[70:], image[70:])
    assert (
        cv2.Laplacian(out[:60, 100:150], cv2.CV_64F).var() < 0.05 * cv2.Laplacian(image[:60, 100:150], cv2.CV_64F).var()
    )


@pytest.mark.slow
def test_watch_cli_on_a_recording_shows_status_writes_report_and_history_and_ends(tmp_path, astronaut_bgr):
    write_video(tmp_path / "door.mp4", moving_face_frames(astronaut_bgr, count=30), fps=10)
    (tmp_path / "site.toml").write_text(
        '[[source]]\nname = "door"\nurl = "door.mp4"\ndetector = "maskface"\n'
        "[rules]\nno_mask_seconds = 1\nno_mask_classes = ['without_mask', 'with_mask']\n"
        "[report]\ninterval = 1\n"
    )
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "FORCE_COLOR": "1", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "maskwatch", "watch", str(tmp_path / "site.toml"), "--report", str(tmp_path / "r.csv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"door \[\w+\] \d+ fr [\d.]+ fps", done.stderr)  # the live status line
    assert re.search(r"door\s*│\s*ended\s*│\s*30\b", done.stderr), done.stderr  # the closing table
    with (tmp_path / "r.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["frames"]) for r in rows] == [10, 10, 10]
    store = EventStore(tmp_path / "maskwatch-events")
    assert [e.rule for e in store.events()] == [NO_MASK]
    assert [r["frames"] for r in store.intervals(since=0)] == [10, 10, 10]  # the dashboard's history


@pytest.mark.slow
def test_a_stream_that_comes_back_keeps_its_timeline_and_new_people_still_raise_events(tmp_path, astronaut_bgr):
    from scripted_stream import MjpegServer

    from maskwatch.monitor.watch import Monitor

    walk = [cv2.imencode(".jpg", f)[1].tobytes() for f in moving_face_frames(astronaut_bgr, count=20)]
    # first connection: 2 s of one person; then the camera is away for the stream's own three quick retries;
    # the watch opens it again and gets another 2 s with another person
    sessions = [walk, None, None, None, walk, None]
    with MjpegServer([], fps=10, speed=2.0, sessions=sessions) as camera:
        config = parse_config(
            {
                "source": [
                    {
                        "name": "door",
                        "url": camera.url,
                        "detector": "maskface",
                        "fps": 10,
                        "reconnects": 3,
                        "reconnect_delay": 0.1,
                    }
                ],
                "rules": {"no_mask_seconds": 1, "no_mask_classes": ["without_mask", "with_mask"]},
                "storage": {"folder": str(tmp_path / "ev")},
            }
        )
        monitor = Monitor(config).start()
        monitor.wait()
        summary = monitor.stop()
    door = summary.sources[0]
    assert door.frames == 40 and door.status == "failed"  # after the second 2 s the camera stays away: given up
    assert door.reconnects == 4  # one to get the second 2 s, then three that find nothing (reconnects = 3)
    events = sorted(EventStore(tmp_path / "ev").events(), key=lambda e: e.id)
    assert [e.rule for e in events] == [NO_MASK, NO_MASK]  # the person after the reconnection is a new person
    assert events[0].track != events[1].track
    assert events[0].source_time == pytest.approx(1.0) and events[1].source_time == pytest.approx(3.0)


@pytest.mark.slow
def test_watch_stops_cleanly_on_sigterm_with_its_summary_report_and_events(tmp_path, astronaut_bgr):
    from scripted_stream import MjpegServer

    walk = [cv2.imencode(".jpg", f)[1].tobytes() for f in moving_face_frames(astronaut_bgr, count=30)]
    with MjpegServer((walk + walk[::-1]) * 20, fps=10, speed=1.0) as camera:
        (tmp_path / "site.toml").write_text(
            f'[[source]]\nname = "door"\nurl = "{camera.url}"\ndetector = "maskface"\n'
            "[rules]\nno_mask_seconds = 1\nno_mask_classes = ['without_mask', 'with_mask']\n"
            '[report]\npath = "r.csv"\ninterval = 1\n'
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "maskwatch", "watch", str(tmp_path / "site.toml")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        )
        try:
            report = tmp_path / "r.csv"
            wait_for(lambda: report.is_file() and len(report.read_text().splitlines()) >= 3, 60, "two report rows")
            db = tmp_path / "maskwatch-events" / "events.sqlite3"
            wait_for(lambda: _stored_events(db) >= 1, 60, "an event")
            process.terminate()
            _, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, err
    assert re.search(r"door\s*│\s*stopped\s*│", err), err
    assert "event 1 no_mask" in err and "alerts: 0 delivered" in err
    rows = report.read_text().splitlines()
    assert len(rows) >= 4 and rows[0].startswith("source,start,end,frames")  # the open interval was written too


def _stored_events(db: Path) -> int:
    if not db.is_file():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as ro:
        return ro.execute("SELECT COUNT(*) FROM events").fetchone()[0]
