"""The on-device mode's server side (settings, models, app files) and its JavaScript against the Python pipeline.

The page's decoder (static/ondevice.js) is run in Node on the same inputs as maskwatch's Python code:
the letterboxed tensor, the face crops and the decoded, merged faces must agree. Skips without ``node``.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from maskwatch.detectors import maskface
from maskwatch.inference.crops import crop_face
from maskwatch.inference.onnx_runtime import create_session
from maskwatch.pipeline import Detector
from maskwatch.web import create_app
from maskwatch.web.ondevice import ondevice_config

ONDEVICE_JS = Path(__file__).resolve().parents[1] / "src" / "maskwatch" / "web" / "static" / "ondevice.js"
DEMO = Path(__file__).resolve().parents[1] / "src" / "maskwatch" / "assets" / "demo.jpg"


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(threads=1)


@pytest.fixture(scope="module")
def client(detector):
    with TestClient(create_app(detector=detector, workers=1)) as c:
        yield c


def test_settings_come_from_the_detector_and_bundle_json(client, detector):
    config = client.get("/v1/ondevice").json()
    meta = json.loads(resources.files("maskwatch.packaged").joinpath("maskface.json").read_text())
    bundle = detector.classifier.bundle.meta
    d = config["detector"]
    assert (d["decoder"], d["name"]) == ("maskface", "maskface")
    assert (d["stride"], d["size"], d["threshold"], d["classes"]) == (
        meta["stride"],
        meta["input_size"],
        meta["threshold"],
        meta["classes"],
    )
    assert (d["coarse_size"], d["nms_iou"], d["min_score"]) == (128, 0.4, 0.5)
    c = config["classifier"]
    assert (c["classes"], c["input_size"], c["margin"]) == (bundle.classes, bundle.input_size, bundle.crop.margin)
    assert (config["min_face"], config["head_weight"]) == (detector.min_face, detector.head_weight)
    assert client.get(d["model"]).content == detector.face_detector.onnx
    assert client.get(c["model"]).content == detector.classifier.bundle.onnx
    assert client.get("/v1/ondevice?conf=0.1").status_code == 422
    text = client.get("/v1/ondevice").text
    assert c["name"] == "default" and str(Path(__file__).resolve().parents[1]) not in text  # no server paths
    assert str(Path(detector.classifier.bundle.source).parent) not in text


def test_a_detector_the_page_cannot_run_is_said_so(detector):
    other = Detector(model=detector.classifier.bundle, detector="maskface-flip", threads=1)
    config = ondevice_config(other)
    assert config["available"] is False and "maskface-flip" in config["reason"]
    with TestClient(create_app(detector=other, workers=1)) as c:
        assert c.get("/v1/ondevice").json()["available"] is False
        assert c.get("/v1/ondevice/detector.onnx").status_code == 404


def test_token_guards_the_models(detector):
    with TestClient(create_app(detector=detector, workers=1, token="s3cret")) as c:
        assert c.get("/v1/ondevice").status_code == 401
        assert c.get("/v1/ondevice/classifier.onnx").status_code == 401
        assert c.get("/v1/ondevice", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/").status_code == 200 and c.get("/sw.js").status_code == 200


def test_app_files_manifest_icons_and_isolation(client):
    page = client.get("/")
    assert page.headers["cross-origin-embedder-policy"] == "require-corp"
    assert page.headers["cross-origin-opener-policy"] == "same-origin"
    assert 'rel="manifest"' in page.text and "ondevice-page.js" in page.text
    worker = client.get("/sw.js")
    assert worker.headers["content-type"].startswith("text/javascript") and "caches" in worker.text
    manifest = client.get("/manifest.webmanifest").json()
    for icon in manifest["icons"]:
        got = client.get(icon["src"])
        assert got.status_code == 200, icon
        if icon["type"] == "image/png":
            image = cv2.imdecode(np.frombuffer(got.content, np.uint8), cv2.IMREAD_COLOR)
            assert f"{image.shape[1]}x{image.shape[0]}" == icon["sizes"]
    assert client.get("/icon-64.png").status_code == 404
    assert "cross-origin-embedder-policy" not in client.get("/healthz").headers


def run_node(script: str, payload: dict) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found: the page's decoder is checked in Node")
    program = f"const M = require({json.dumps(str(ONDEVICE_JS))});\n" + script
    done = subprocess.run(
        [node, "-e", program], input=json.dumps(payload), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def rgba_payload(image_bgr: np.ndarray) -> dict:
    rgba = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGBA)
    return {
        "width": image_bgr.shape[1],
        "height": image_bgr.shape[0],
        "data": base64.b64encode(rgba.tobytes()).decode(),
    }


NODE_PRELUDE = """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const img = input.image;
const image = { width: img.width, height: img.height, data: new Uint8ClampedArray(Buffer.from(img.data, "base64")) };
const out = (x) => process.stdout.write(JSON.stringify(x));
"""


def test_letterbox_and_crops_match_python():
    frame = cv2.imread(str(DEMO))[:, 100:700]  # 600 x 384: neither side a multiple of 32
    sizes = [128, 320, 640]  # shrunk and enlarged
    boxes = [(50.3, 20.1, 140.7, 130.2), (-10.0, 200.0, 60.0, 290.0), (500.0, 300.0, 620.0, 400.0)]
    got = run_node(
        NODE_PRELUDE
        + """
const b64 = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
const boxes = input.sizes.map((size) => {
  const lb = M.letterbox(image, size, 32);
  return { tensor: b64(lb.tensor), width: lb.width, height: lb.height, scale: lb.scale };
});
out({ boxes, crops: input.boxes.map((b) => b64(M.cropFace(image, b, 128, 0.2))) });
""",
        {"image": rgba_payload(frame), "sizes": sizes, "boxes": boxes},
    )
    for size, mine in zip(sizes, got["boxes"]):
        tensor, scale = maskface.letterbox(frame, size)
        assert (mine["height"], mine["width"]) == tensor.shape[1:3] and mine["scale"] == pytest.approx(scale)
        js = np.frombuffer(base64.b64decode(mine["tensor"]), np.float32).reshape(tensor.shape)
        diff = np.abs(js - tensor)
        assert diff.max() <= 1 and diff.mean() < 0.25, size  # OpenCV rounds fixed-point weights: one level at most
    for box, crop in zip(boxes, got["crops"]):
        js = np.frombuffer(base64.b64decode(crop), np.uint8).reshape(128, 128, 3).astype(np.int16)
        diff = np.abs(js - crop_face(frame, box, 128, 0.2))
        assert diff.max() <= 1 and diff.mean() < 0.25, box


def test_decoded_faces_match_python():
    """The real model's maps of the demo frame, decoded and merged by the page's code and by maskface's."""
    frame = cv2.imread(str(DEMO))
    face_detector = maskface.MaskFaceDetector(threads=1)
    session = create_session(face_detector.onnx, threads=1)  # the file the page runs
    maps = {}
    for size in (face_detector.size, face_detector.coarse_size):
        tensor, _ = maskface.letterbox(frame, size)
        raw = session.run(None, {session.get_inputs()[0].name: tensor})[0]
        maps[size] = {"dims": list(raw.shape), "data": base64.b64encode(raw.astype(np.float32).tobytes()).decode()}
    config = {
        "decoder": "maskface",
        "classes": list(maskface.CLASSES),
        "stride": maskface.STRIDE,
        "multiple": maskface.MULTIPLE,
        "size": face_detector.size,
        "coarse_size": face_detector.coarse_size,
        "coarse_min_side": maskface.COARSE_MIN_SIDE,
        "threshold": face_detector.threshold,
        "min_score": 0.3,  # below the default: more faces to compare
        "nms_iou": face_detector.nms_iou,
        "max_peaks": 200,
    }
    got = run_node(
        NODE_PRELUDE
        + """
const run = async (data, dims) => {  // the maps Python computed for this input size (the long side: 320 or 128)
  const raw = input.maps[String(Math.max(dims[1], dims[2]))];
  const bytes = Buffer.from(raw.data, "base64");
  return [{ name: "maps", dims: raw.dims, data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) }];
};
M.decoders.maskface.detect(image, run, input.cfg).then(out);
""",
        {"image": rgba_payload(frame), "maps": maps, "cfg": config},
    )
    face_detector.min_score = 0.3
    expected = face_detector.detect(frame)
    assert len(got) == len(expected) >= 2
    for mine, theirs in zip(sorted(got, key=lambda d: d["box"][0]), sorted(expected, key=lambda d: d.box[0])):
        box = np.clip(mine["box"], 0, [frame.shape[1], frame.shape[0]] * 2)
        assert np.allclose(box, theirs.box, atol=0.05), (mine["box"], theirs.box)
        assert mine["score"] == pytest.approx(theirs.score, abs=1e-4)
        assert np.allclose(mine["probs"], [theirs.class_probabilities[c] for c in maskface.CLASSES], atol=1e-4)


def test_yunet_decoding_matches_python(yunet_file):
    """YuNet's own model file (BGR NCHW, one output per kind and stride): the page's decoder against yunet.py."""
    yunet = pytest.importorskip("maskwatch.detectors.yunet")
    import onnxruntime as ort

    frame = cv2.imread(str(DEMO))
    face_detector = yunet.YuNetDetector(threads=1, min_score=0.3, model=yunet_file)
    session = ort.InferenceSession(yunet_file.read_bytes(), providers=["CPUExecutionProvider"])
    canvas, _ = yunet.pad_input(frame, face_detector.sizes[0])
    blob = np.ascontiguousarray(canvas.transpose(2, 0, 1))[None].astype(np.float32)
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, {session.get_inputs()[0].name: blob})))
    config = {
        "decoder": "yunet",
        "classes": None,
        "strides": list(yunet.STRIDES),
        "multiple": yunet.MULTIPLE,
        "map_channels": yunet.MAP_CHANNELS,
        "layout": "nchw-bgr-split",
        "scores_are_logits": False,
        "size": face_detector.sizes[0],
        "min_score": face_detector.min_score,
        "nms_iou": face_detector.nms_iou,
    }
    got = run_node(
        NODE_PRELUDE
        + """
const run = async (data, dims) => {  // the outputs Python computed, checked against the tensor the page built
  const blob = Buffer.from(input.blob, "base64");
  const expected = new Float32Array(blob.buffer, blob.byteOffset, blob.length / 4);
  let worst = 0;
  for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(data[i] - expected[i]));
  if (data.length !== expected.length || worst > 1) throw new Error(`input differs: ${dims} ${worst}`);
  return Object.entries(input.outputs).map(([name, b64]) => {
    const bytes = Buffer.from(b64, "base64");
    return { name, dims: null, data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) };
  });
};
M.decoders.yunet.detect(image, run, input.cfg).then(out);
""",
        {
            "image": rgba_payload(frame),
            "cfg": config,
            "blob": base64.b64encode(blob.tobytes()).decode(),
            "outputs": {k: base64.b64encode(v.astype(np.float32).tobytes()).decode() for k, v in outputs.items()},
        },
    )
    expected = face_detector.detect(frame)
    assert len(got) == len(expected) >= 2
    for mine, theirs in zip(sorted(got, key=lambda d: d["box"][0]), sorted(expected, key=lambda d: d.box[0])):
        box = np.clip(mine["box"], 0, [frame.shape[1], frame.shape[0]] * 2)
        assert np.allclose(box, theirs.box, atol=0.05), (mine["box"], theirs.box)
        assert mine["score"] == pytest.approx(theirs.score, abs=1e-4)


def fake_npm_tarball() -> bytes:
    """An npm tarball holding the three runtime files (tiny stand-ins), as the registry serves it."""
    import io
    import tarfile

    from maskwatch.web import vendor

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in vendor.FILES:
            data = f"// {name}\n".encode()
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_vendoring_checks_the_registry_hash_and_fails_softly(tmp_path, monkeypatch, capsys):
    import hashlib

    from maskwatch.web import vendor

    tarball = fake_npm_tarball()
    with pytest.raises(ValueError, match="does not match"):
        vendor.check_integrity(tarball)  # not the pinned release
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    vendor.check_integrity(tarball, integrity)
    folder = tmp_path / "vendor"
    vendor.extract(tarball, folder)
    assert vendor.is_vendored(folder) and (folder / "LICENSE.txt").read_text().startswith("onnxruntime-web")
    (folder / vendor.FILES[-1]).unlink()
    assert not vendor.is_vendored(folder)
    # no registry to be reached (a closed local port) and nothing cached: one line, no exception, False
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(vendor, "REGISTRY", "http://127.0.0.1:9")
    assert vendor.ensure(tmp_path / "other") is False
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "on-device mode not packaged" in err[0]
    assert not (tmp_path / "other").exists()
