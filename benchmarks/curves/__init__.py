"""Simulated learning curves for the early-stopping benchmark (see ``family``)."""
