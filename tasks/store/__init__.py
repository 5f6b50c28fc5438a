"""The study store: every MLflow read and write of a study, its lease and outage policy."""
