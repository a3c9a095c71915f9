"""bench/compare loaded as a module (it is a script without a .py suffix), for its tests."""
import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

COMPARE = Path(__file__).resolve().parents[2] / "bench" / "compare"


@pytest.fixture(scope="session")
def compare():
    loader = importlib.machinery.SourceFileLoader("bench_compare", str(COMPARE))
    spec = importlib.util.spec_from_loader("bench_compare", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
