"""Tiled inference: tile planning, the predict generator, post-processing."""
