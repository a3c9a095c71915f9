"""bench/compare hands numpy the input copies clpool's benchmark took, and judges by the cache size
clpool reported (the `compare` fixture: conftest.py)."""


def clpool_round(compare, cpu, opencl):
    """A round's clpool results as run_clpool leaves them: per backend, its cases by key."""
    return {"cpu": {"cases": {compare.case_key(c): c for c in cpu}, "error": None},
            "opencl": {"cases": {compare.case_key(c): c for c in opencl}, "error": None if opencl else "not built"}}


LARGE = {"op": "avg", "shape": [256, 2048, 7, 7], "layout": "channels-first", "dtype": "float16"}
SMALL = {"op": "max", "shape": [64, 64, 7, 7], "layout": "channels-last", "dtype": "float32"}


def test_numpy_gets_the_most_copies_any_backend_took(compare):
    this = clpool_round(compare, [dict(LARGE, input_copies=3), dict(SMALL, input_copies=1)], [dict(LARGE, input_copies=2)])
    assert compare.input_copies(this, LARGE) == 3
    assert compare.input_copies(this, SMALL) == 1


def test_a_case_clpool_did_not_run_gets_one_copy(compare):
    this = clpool_round(compare, [dict(SMALL, input_copies=1)], [])
    assert compare.input_copies(this, LARGE) == 1
    assert compare.input_copies(clpool_round(compare, [dict(LARGE)], []), LARGE) == 1  # an older clpool


def test_the_cache_size_is_the_one_clpool_reported(compare):
    rounds = [{"clpool": clpool_round(compare, [], [])},
              {"clpool": clpool_round(compare, [dict(SMALL, last_level_cache_bytes=None)],
                                      [dict(LARGE, last_level_cache_bytes=32 << 20)])}]
    assert compare.reported_cache_bytes(rounds) == 32 << 20
    assert compare.reported_cache_bytes(rounds[:1]) is None
