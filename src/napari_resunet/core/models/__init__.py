"""Network definitions and the checkpoint format."""
