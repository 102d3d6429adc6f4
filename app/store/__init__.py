"""Persistence: the only package that holds SQL. Store functions never commit; callers own transactions."""
