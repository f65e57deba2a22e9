"""Mamori generation backends: one backend per file, heavy imports inside functions."""
