"""Training stages as short linear scripts on TRL's trainers: ``sft``, ``grpo``."""
