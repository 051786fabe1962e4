"""Evaluation: generate -> parse -> score -> tables and images (``radrl eval``)."""
