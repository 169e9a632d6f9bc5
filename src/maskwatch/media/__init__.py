"""Media in and out: frame sources, image files, drawing, sinks (annotated media, JSON lines) and the runner."""
