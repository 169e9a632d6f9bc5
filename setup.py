"""Build hook: vendor ONNX Runtime Web (from the npm registry) for the page's on-device mode.

All other metadata is in pyproject.toml. See src/maskwatch/web/vendor.py for why and how.
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

VENDOR = Path(__file__).resolve().parent / "src" / "maskwatch" / "web" / "vendor.py"


class BuildPyWithVendor(build_py):
    def run(self) -> None:
        spec = importlib.util.spec_from_file_location("maskwatch_vendor", VENDOR)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.ensure()  # a warning, not a failed install, where the registry cannot be reached
        super().run()


setup(cmdclass={"build_py": BuildPyWithVendor})
