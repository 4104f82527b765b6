"""napari-facing code (widgets, sample data). Nothing is imported eagerly."""
