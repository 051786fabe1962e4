"""``radrl sft --config RECIPE [--field value ...]``: supervised fine-tuning (``radrl.train.sft``).

The recipe and the overrides are read by TRL's ``TrlParser`` into ``RadrlSFTConfig``
(``radrl sft --help`` lists every field with its help text)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> str:
    from radrl.train.sft import parse_config, train

    path = train(parse_config(argv))
    print(f"saved to {path}")
    return path
