"""``python -m radrl.cli <verb>``: the ``radrl`` command, for launchers that take a module
(``accelerate launch -m radrl.cli sft``, ``torchrun -m radrl.cli``). The guard matters: vLLM and
uvicorn's workers start spawned processes that import this module again."""

from radrl.cli.verbs import main

if __name__ == "__main__":
    main()
