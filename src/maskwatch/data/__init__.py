"""Data and data sets: folder data sets and splits, box annotations, face collection, the crop cache, synthesis."""
