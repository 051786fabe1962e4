"""LocalServer start-up failures reach the caller with the loader's own error."""

import pytest


def test_missing_checkpoint_error_reaches_the_caller(tmp_path):
    from radrl.models.endpoint import LocalServer

    missing = tmp_path / "no-such-checkpoint"
    # the loader's FileNotFoundError (naming the folder), not a generic "did not start" RuntimeError
    with pytest.raises(FileNotFoundError, match="no-such-checkpoint"):
        LocalServer(str(missing)).start()
