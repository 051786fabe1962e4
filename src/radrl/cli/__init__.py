"""The command line: ``radrl <verb>``, one module per verb (``radrl.cli.<verb>.main(argv)``).

Only this package parses arguments and prints a command's result; the library below it takes
plain arguments, logs its progress and raises exceptions whose message says the fix, which
``main`` turns into one ``radrl <verb>: error: ...`` line and exit code 1.
"""

from radrl.cli.verbs import VERBS, main

__all__ = ["VERBS", "main"]
