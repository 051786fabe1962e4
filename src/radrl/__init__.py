"""radrl: train and evaluate chest X-ray vision-language models (SFT, thinking cold start, GRPO).

The package reads as the pipeline: ``data`` -> ``models`` -> ``train`` -> ``eval``,
with ``parsing``, ``metrics`` and ``rewards`` shared by training and evaluation so
that the number optimised is the number reported.
"""

__version__ = "0.1.0"
