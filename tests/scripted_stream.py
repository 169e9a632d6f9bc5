"""A scripted camera for the watch tests and benchmark: people (face crops) enter and leave a plain scene at known
times; the frames are served as an HTTP MJPEG stream on 127.0.0.1, as many IP cameras serve them.

Crops are read from ``../shared/data`` at run time (never copied into the repository) and screened first: a crop
is used only if the pipeline finds exactly one face in it at every slot of the scene, in one class.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, FACE = 640, 360, 110
SLOTS = [(10 + 125 * i, 110) for i in range(5)]
"""Top-left corners where a face may stand: five places side by side, far enough apart for the tracker."""
FPS = 5.0


@dataclass(frozen=True)
class Person:
    name: str
    kind: str
    """'masked', 'bare' or 'incorrect' (a mask worn wrongly): which crop pool it comes from."""
    slot: int
    enter: float
    leave: float
    """Seconds of stream time; visible in frames with enter <= t < leave."""


SCRIPT = [
    Person("A", "masked", 0, 0.0, 45.0),
    Person("B", "masked", 1, 5.0, 115.0),
    Person("C", "bare", 2, 10.0, 30.0),
    Person("D", "masked", 3, 20.0, 50.0),
    Person("F", "bare", 2, 40.0, 42.4),  # in view 2.4 s: shorter than the no-mask time, no event
    Person("G", "bare", 0, 50.0, 95.0),
    Person("H", "bare", 3, 55.0, 100.0),
    Person("E", "incorrect", 4, 60.0, 110.0),
]
DURATION = 120.0


def frame_times(duration: float = DURATION, fps: float = FPS) -> list[float]:
    return [i / fps for i in range(int(round(duration * fps)))]


def visible(person: Person, t: float) -> bool:
    return person.enter <= t < person.leave - 1e-9


def place(canvas: np.ndarray, crop: np.ndarray, slot: int) -> None:
    x, y = SLOTS[slot]
    h, w = crop.shape[:2]
    scale = FACE / h
    face = cv2.resize(crop, (max(1, min(118, round(w * scale))), FACE), interpolation=cv2.INTER_AREA)
    canvas[y : y + face.shape[0], x : x + face.shape[1]] = face


def background() -> np.ndarray:
    """A plain wall with a soft gradient (no texture a detector could take for a face)."""
    ramp = np.linspace(110, 150, WIDTH, dtype=np.float32)
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[:] = np.stack([ramp, ramp + 8, ramp + 16], axis=-1).clip(0, 255).astype(np.uint8)
    return image


def compose(t: float, crops: dict[str, np.ndarray], script: list[Person] = SCRIPT) -> np.ndarray:
    canvas = background()
    for person in script:
        if visible(person, t):
            place(canvas, crops[person.name], person.slot)
    return canvas


def candidate_crops(shared: Path) -> dict[str, list[np.ndarray]]:
    """Crops per kind: masked and bare faces from the face-mask set, wrongly worn masks cut from the scenes' boxes."""
    import xml.etree.ElementTree as ET

    out: dict[str, list[np.ndarray]] = {"masked": [], "bare": [], "incorrect": []}
    for kind, folder in (("masked", "with_mask"), ("bare", "without_mask")):
        for path in sorted((shared / "data" / "face-mask" / folder).glob("*.jpg"))[:60]:
            image = cv2.imread(str(path))
            if image is not None and image.shape[0] >= 90:
                out[kind].append(image)
    scenes = shared / "data" / "scenes"
    for xml in sorted((scenes / "annotations").glob("*.xml")):
        root = ET.parse(xml).getroot()
        image = None
        for obj in root.iter("object"):
            if obj.findtext("name") != "mask_weared_incorrect":
                continue
            box = obj.find("bndbox")
            x1, y1, x2, y2 = (int(float(box.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
            if y2 - y1 < 55:
                continue
            if image is None:
                image = cv2.imread(str(scenes / "images" / (xml.stem + ".jpg")))
            m = (y2 - y1) // 4
            out["incorrect"].append(image[max(0, y1 - m) : y2 + m, max(0, x1 - m) : x2 + m].copy())
    return out


def screen(detector, crop: np.ndarray) -> str | None:
    """The one class the pipeline gives this crop at every slot, or None (no face, two faces, or classes differ)."""
    labels = set()
    for slot in range(len(SLOTS)):
        canvas = background()
        place(canvas, crop, slot)
        ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
        faces = detector.detect(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
        if len(faces) != 1 or faces[0].score < 0.9:
            return None
        labels.add(faces[0].label)
    return labels.pop() if len(labels) == 1 else None


def cast(detector, shared: Path, script: list[Person] = SCRIPT) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A crop for every person of the script, and the class the pipeline sees it in.

    Masked people must read with_mask and bare ones without_mask. A wrongly worn mask reads as whatever the model
    makes of it (a two-class model has no class for it); its expected class is the screened one.
    """
    pools = candidate_crops(shared)
    wanted = {"masked": "with_mask", "bare": "without_mask", "incorrect": None}
    chosen: dict[str, list[tuple[np.ndarray, str]]] = {k: [] for k in pools}
    need = Counter(p.kind for p in script)
    for kind, crops in pools.items():
        for crop in crops:
            if len(chosen[kind]) >= need[kind]:
                break
            label = screen(detector, crop)
            if label is not None and (wanted[kind] is None or label == wanted[kind]):
                chosen[kind].append((crop, label))
        if len(chosen[kind]) < need[kind]:
            raise RuntimeError(f"only {len(chosen[kind])} usable {kind} crops; the script needs {need[kind]}")
    crops, labels = {}, {}
    taken = Counter()
    for person in script:
        crop, label = chosen[person.kind][taken[person.kind]]
        taken[person.kind] += 1
        crops[person.name], labels[person.name] = crop, label
    return crops, labels


class MjpegServer:
    """Serves the script's frames as ``multipart/x-mixed-replace`` JPEGs at ``url``; each connection gets the
    whole script once, at ``speed`` times real time (TCP back-pressure slows it to the reader's pace)."""

    def __init__(
        self, frames: list[bytes], fps: float = FPS, speed: float = 4.0, sessions: list[list[bytes] | None] = ()
    ) -> None:
        """``sessions``: what successive connections get instead (a frame list, or None: refused with 404)."""
        self.frames = frames
        self.sessions = list(sessions)
        self.period = 1.0 / (fps * speed) if speed > 0 else 0.0
        self.served = 0
        self.stop = threading.Event()
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if server_self.sessions:
                    frames = server_self.sessions[min(server_self.served, len(server_self.sessions) - 1)]
                else:
                    frames = None if server_self.served else server_self.frames
                server_self.served += 1
                if frames is None:
                    self.send_error(404, "no stream now")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for jpeg in frames:
                        if server_self.stop.wait(server_self.period):
                            return
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                        self.wfile.write(head + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MjpegServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def encode_script(
    crops: dict[str, np.ndarray], script: list[Person] = SCRIPT, duration: float = DURATION
) -> list[bytes]:
    out = []
    for t in frame_times(duration):
        ok, jpeg = cv2.imencode(".jpg", compose(t, crops, script), [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(jpeg.tobytes())
    return out
