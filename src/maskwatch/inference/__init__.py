"""Inference stages after the detector: crops, the mask classifier and its bundles, landmarks, tracking, box maths.

Kept free of imports here so that importing one stage loads only what it needs.
"""
