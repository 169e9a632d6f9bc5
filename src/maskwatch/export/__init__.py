"""Exports for the edge: int8 ONNX (static quantisation with ONNX Runtime's tools) and TFLite.

``export_bundle`` turns a classifier bundle into an int8 bundle (a bundle like any other: ``--model`` runs it)
or a TFLite model; ``export_detector`` quantises any registered ONNX face detector (``--detector FOLDER`` runs
it). Each export measures its parity with the float model and its speed, and writes both beside the model.
Needs ``onnx`` (``pip install 'maskwatch[export]'``); TFLite needs the training extra.
"""

from maskwatch.export.bundles import export_bundle
from maskwatch.export.common import FORMATS, REPORT_FILE
from maskwatch.export.detectors import export_detector

__all__ = ["FORMATS", "REPORT_FILE", "export_bundle", "export_detector"]
