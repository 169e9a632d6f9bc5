"""ONNX Runtime Web for the page's on-device mode: fetched from the npm registry when the package is built.

The WebAssembly runtime is 14 MB, too big to keep in the repository, and the page must
load nothing from a CDN. So the build (``setup.py``) takes the pinned ``onnxruntime-web``
release from the npm registry, checks it against the registry's SHA-512 integrity value,
and copies the three files the page needs into ``web/static/vendor/``. A build without
access to the registry still succeeds; the page then says the on-device mode is missing.

For a source checkout: ``python -m maskwatch.web.vendor`` (or ``pip install -e .``).
Standard library only: ``setup.py`` loads this file before maskwatch is installed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

ORT_WEB_VERSION = "1.30.0"
"""onnxruntime-web release the page is tested with (MIT licence, Microsoft)."""
ORT_WEB_INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
"""The npm registry's ``dist.integrity`` of that release's tarball."""
REGISTRY = os.environ.get("MASKWATCH_NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
"""The WebAssembly-only build: the JS API (global ``ort``), the Emscripten loader and the SIMD+threads binary."""
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
STAMP = "VERSION"


def tarball_url(version: str = ORT_WEB_VERSION) -> str:
    return f"{REGISTRY}/onnxruntime-web/-/onnxruntime-web-{version}.tgz"


def is_vendored(folder: Path = VENDOR_DIR) -> bool:
    """Whether ``folder`` holds every needed file of the pinned release."""
    stamp = folder / STAMP
    return (
        stamp.is_file()
        and stamp.read_text().strip() == ORT_WEB_VERSION
        and all((folder / name).is_file() for name in FILES)
    )


def check_integrity(data: bytes, integrity: str = ORT_WEB_INTEGRITY) -> None:
    algorithm, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise ValueError(f"onnxruntime-web {ORT_WEB_VERSION}: tarball does not match the registry's {algorithm}")


def download(url: str, timeout: float = 120.0) -> bytes:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "maskwatch" / Path(url).name
    if cache.is_file():
        data = cache.read_bytes()
        try:
            check_integrity(data)
            return data
        except ValueError:
            pass
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a fixed https URL)
        data = response.read()
    check_integrity(data)
    try:  # a second build (wheel, then editable) does not download again
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(data)
    except OSError:
        pass
    return data


def extract(data: bytes, folder: Path) -> None:
    """Copy ``FILES`` out of the npm tarball into ``folder`` (written last: the stamp)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in FILES:
            member = tar.extractfile(f"package/dist/{name}")
            if member is None:
                raise ValueError(f"onnxruntime-web {ORT_WEB_VERSION}: no dist/{name} in the tarball")
            (folder / name).write_bytes(member.read())
    (folder / "LICENSE.txt").write_text(
        f"onnxruntime-web {ORT_WEB_VERSION} (https://www.npmjs.com/package/onnxruntime-web), "
        "Copyright (c) Microsoft Corporation, MIT License.\n"
    )
    (folder / STAMP).write_text(ORT_WEB_VERSION + "\n")


def ensure(folder: Path = VENDOR_DIR, quiet: bool = False) -> bool:
    """Vendor the runtime into ``folder`` unless it is there; False (with one line on stderr) when it cannot."""
    if is_vendored(folder):
        return True
    try:
        extract(download(tarball_url()), folder)
    except (OSError, ValueError, tarfile.TarError) as exc:
        if not quiet:
            print(
                f"maskwatch: on-device mode not packaged: onnxruntime-web {ORT_WEB_VERSION} from {REGISTRY}: {exc}",
                file=sys.stderr,
            )
        return False
    return True


if __name__ == "__main__":
    ok = ensure()
    print(f"{VENDOR_DIR}: onnxruntime-web {ORT_WEB_VERSION} {'ready' if ok else 'MISSING'}")
    sys.exit(0 if ok else 1)
