"""opsloop workers."""
