"""Makes `import clpool` find python/ when pytest runs from the repository root, and draws the
tests' data from one seed, printed at the end of the run so that a failure can be reproduced."""
import os
import pathlib
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "python"))

SEED = int(os.environ.get("CLPOOL_TEST_SEED", np.random.SeedSequence().entropy % 2**63))


def pytest_terminal_summary(terminalreporter, exitstatus):
    terminalreporter.write_line(f"clpool test data seed {SEED} (CLPOOL_TEST_SEED={SEED} reproduces this run's data)")


@pytest.fixture
def rng(request):
    # One stream per test, so a test's data does not depend on which tests ran before it.
    return np.random.default_rng([SEED, zlib.crc32(request.node.nodeid.encode())])
