"""Prefect flows (the study and its rounds), the spec and the command line."""
