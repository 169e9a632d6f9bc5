"""Training of the ``maskface`` detector: Keras model, target encoding, data, loop and ONNX export.

Needs the ``maskwatch[train]`` extra (TensorFlow, Keras); inference never imports this package.
"""
