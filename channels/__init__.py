"""opsloop channels."""
