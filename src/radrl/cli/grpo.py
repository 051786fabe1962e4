"""``radrl grpo --config RECIPE [--field value ...]``: GRPO with clinical rewards (``radrl.train.grpo``).

The recipe and the overrides are read by TRL's ``TrlParser`` into ``RadrlGRPOConfig``
(``radrl grpo --help`` lists every field with its help text)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> str:
    from radrl.train.grpo import parse_config, train

    path = train(parse_config(argv))
    print(f"saved to {path}")
    return path
