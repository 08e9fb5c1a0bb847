"""opsloop bot."""
