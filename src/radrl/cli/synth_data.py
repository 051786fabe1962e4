"""``radrl synth-data OUT``: synthetic chest X-rays with reports and boxes (``radrl.data.synthetic``)."""

from __future__ import annotations

from radrl.cli.args import ArgumentParser


def main(argv: list[str] | None = None) -> dict:
    p = ArgumentParser(prog="radrl synth-data", description="Write synthetic chest X-rays, reports and boxes.")
    p.add_argument("out")
    p.add_argument("--train", type=int, default=400, help="training images")
    p.add_argument("--test", type=int, default=60, help="held-out images")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from radrl.data.synthetic import write_dataset

    paths = write_dataset(a.out, n_train=a.train, n_test=a.test, seed=a.seed, size=a.size)
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    return paths
