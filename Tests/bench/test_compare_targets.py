"""bench/compare's judgement of issue 13's targets, on rows built by hand (the `compare` fixture:
conftest.py)."""
import pytest


def row(op, shape, layout, dtype, rounds):
    """A row as build_rows makes it: per round, clpool's times, numpy's and the ceiling share."""
    label = f"{op} {'x'.join(map(str, shape))} {layout} {dtype}"
    return {"case": label, "key": [op, list(shape), layout, dtype],
            "rounds": [{"ours": {"cpu": cpu_s, "opencl": None}, "numpy_s": numpy_s, "pct_ceiling": pct}
                       for cpu_s, numpy_s, pct in rounds]}


RESNET = (256, 7, 7, 2048)


def verdicts(compare, rows, cache=32 << 20):
    return {(t["case"], t["goal"]): (t["value"], t["met"]) for t in compare.evaluate_targets(rows, cache)}


def test_a_large_input_is_held_to_the_ceiling_and_numpy_by_its_median_round(compare):
    # Rounds at 90, 80, 88% of the ceiling (median 88: met) and 2, 1.2, 1.4x numpy (median 1.4: not met).
    rows = [row("avg", RESNET, "channels-last", "float32", [(1.0, 2.0, 90), (1.0, 1.2, 80), (1.0, 1.4, 88)])]
    found = verdicts(compare, rows)
    case = rows[0]["case"]
    assert found[(case, ">= 85% of the read ceiling")] == (88, True)
    value, met = found[(case, ">= 1.5x numpy")]
    assert value == pytest.approx(1.4) and met is False


def test_a_cache_resident_input_is_not_judged_against_the_ceiling(compare):
    small = row("avg", (8, 56, 56, 256), "channels-last", "float32", [(1.0, 2.0, 300)])  # 25.7 MB < 32 MiB
    assert verdicts(compare, [small]) == {}
    assert verdicts(compare, [small], cache=16 << 20) != {}
    assert verdicts(compare, [small], cache=None) == {}


def test_float16_and_float64_are_timed_against_float32_round_by_round(compare):
    rows = [row("max", RESNET, "channels-last", "float32", [(2.0, 9, 90), (4.0, 9, 90), (2.0, 9, 90)]),
            row("max", RESNET, "channels-last", "float16", [(1.0, 9, 90), (4.4, 9, 90), (2.2, 9, 90)]),
            row("max", RESNET, "channels-last", "float64", [(4.0, 9, 90), (8.0, 9, 90), (4.8, 9, 90)])]
    found = verdicts(compare, rows)
    half = found[(rows[1]["case"], "float16 time / float32 time <= 1.0")]
    double = found[(rows[2]["case"], "float64 time / (2 x float32 time) <= 1.1")]
    assert half[0] == pytest.approx(1.1) and half[1] is False  # ratios 0.5, 1.1, 1.1
    assert double[0] == pytest.approx(1.0) and double[1] is True  # ratios 1.0, 1.0, 1.2


def test_batch_one_is_judged_against_numpy_and_a_missing_measurement_is_not_a_pass(compare):
    dense = {"case": "dense 1x2048x1000", "key": ["dense", [1, 2048, 1000], None, "float32"],
             "rounds": [{"ours": {"cpu": 1.0, "opencl": 3.0}, "numpy_s": 0.9, "pct_ceiling": None}]}
    head = {"case": "head 1x2048x7x7->1000", "key": ["head", [1, 2048, 7, 7, 1000], "channels-first", "float32"],
            "rounds": [{"ours": {"cpu": None, "opencl": None}, "numpy_s": 1.0, "pct_ceiling": None}]}
    found = verdicts(compare, [dense, head])
    assert found[("dense 1x2048x1000", ">= 1.0x numpy, end to end")] == (pytest.approx(0.9), False)
    assert found[("head 1x2048x7x7->1000", ">= 1.5x numpy, end to end")] == (None, None)
    lines = compare.render_targets(compare.evaluate_targets([dense, head], 32 << 20), 32 << 20, False)
    assert "0 of 2 met" in lines[1] and "NOT MET" in "\n".join(lines) and compare.MISSING in "\n".join(lines)
