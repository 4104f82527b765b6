"""Shipped sample images (see README.md here for sources and licences)."""
