"""Starter model weights and their model cards (package data)."""
