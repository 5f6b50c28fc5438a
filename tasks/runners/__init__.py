"""Pure trial runners: a Python function or a training command, and what they report."""
