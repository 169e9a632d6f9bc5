"""Evaluation and reports: the classifier on a labelled folder, the full pipeline on annotated scenes, benchmarks."""
