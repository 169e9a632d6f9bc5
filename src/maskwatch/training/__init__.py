"""Training: the mask classifier (``training.classifier``) and the mask-aware face detector (``training.detector``).

Importing these packages is cheap; the modules that need TensorFlow/Keras import it themselves.
"""
