"""Prefect tasks and the glue around them: objectives, tracking, proposing, trials."""
