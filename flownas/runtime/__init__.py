"""Executors: where evaluations run (in-process, process pool, Ray)."""
