"""bench/compare's judgement of issue 13's targets, on rows built by hand (the `compare` fixture:
conftest.py)."""
import math

import pytest


def row(op, shape, layout, dtype, rounds, opencl=None):
    """A row as build_rows makes it: per round (cpu seconds, numpy seconds, cpu's % of the read
    beside it); `opencl`, per round, a faster OpenCL time at 200% of the ceiling. cpu's share of
    the membw ceiling is always 50%, which no verdict may take."""
    label = f"{op} {'x'.join(map(str, shape))} {layout} {dtype}"
    opencl = opencl or [None] * len(rounds)
    return {"case": label, "key": [op, list(shape), layout, dtype],
            "rounds": [{"ours": {"cpu": cpu_s, "opencl": gpu_s}, "numpy_s": numpy_s,
                        "pct_ceiling": 200 if gpu_s else 50, "pct_ceiling_by_backend": {"cpu": 50, "opencl": 200 if gpu_s else None},
                        "pct_read_by_backend": {"cpu": pct, "opencl": 200 if gpu_s else None}}
                       for (cpu_s, numpy_s, pct), gpu_s in zip(rounds, opencl)]}


RESNET = (256, 7, 7, 2048)
CEILING, NUMPY = ">= 85% of the read ceiling", ">= 1.5x numpy"
HALF, DOUBLE = "float16 time / float32 time <= 1.0", "float64 time / (2 x float32 time) <= 1.1"


def verdicts(compare, rows, cache=32 << 20):
    return {(t["case"], t["goal"]): (t["value"], t["met"]) for t in compare.evaluate_targets(rows, cache)}


def test_a_large_input_is_held_to_the_ceiling_and_numpy_by_the_median_of_its_rounds_ratios(compare):
    # Shares of the read beside it 90, 80, 88 (median 88: met). numpy / cpu per round: 2.0/1.0, 1.2/0.4, 1.4/1.0,
    # so ratios 2, 3, 1.4 (median 2: met), where the ratio of the medians would be 1.4 / 1.0 = 1.4.
    rows = [row("avg", RESNET, "channels-last", "float32", [(1.0, 2.0, 90), (0.4, 1.2, 80), (1.0, 1.4, 88)])]
    found = verdicts(compare, rows)
    case = rows[0]["case"]
    assert found[(case, CEILING)] == (88, True)
    assert found[(case, NUMPY)] == (pytest.approx(2.0), True)
    lines = "\n".join(compare.render_targets(compare.evaluate_targets(rows, 32 << 20), 32 << 20, False))
    assert "88% (membw 50%)" in lines  # the read beside the case judges; the membw share is shown with it


def test_the_cpu_backend_is_judged_even_where_opencl_is_faster(compare):
    rows = [row("max", RESNET, "channels-first", "float32", [(3.0, 3.0, 40)] * 3, opencl=[1.0] * 3)]
    found = verdicts(compare, rows)
    assert found[(rows[0]["case"], CEILING)] == (40, False)
    assert found[(rows[0]["case"], NUMPY)] == (pytest.approx(1.0), False)


def test_only_inputs_larger_than_the_cache_are_held_to_the_ceiling_counting_their_own_bytes(compare):
    cache = 32 << 20
    edge = (1, cache // 4 // 64, 8, 8)  # exactly the cache in float32
    over = (1, cache // 4 // 64 + 1, 8, 8)
    rows = [row("avg", s, "channels-first", dtype, [(1.0, 2.0, 90)]) for s in (edge, over) for dtype in ("float32", "float16", "float64")]
    judged = {t["case"] for t in compare.evaluate_targets(rows, cache) if t["goal"] == CEILING}
    assert math.prod(edge) * 4 == cache
    assert judged == {rows[i]["case"] for i in (2, 3, 5)}  # edge float64, over float32 and float64; float16 halves the bytes


def test_an_unknown_cache_size_leaves_every_pooling_target_missing_never_met(compare):
    rows = [row("avg", (8, 56, 56, 256), "channels-last", "float32", [(1.0, 2.0, 300)] * 3),
            row("avg", RESNET, "channels-last", "float32", [(1.0, 2.0, 90)] * 3)]
    targets = compare.evaluate_targets(rows, None)
    assert len(targets) == 4 and all(t["met"] is None and t["value"] is None for t in targets)
    lines = "\n".join(compare.render_targets(targets, None, False))
    assert "0 of 4 met" in lines and "unknown" in lines


def test_float16_and_float64_are_timed_against_float32_round_by_round_on_every_shape(compare):
    for shape in (RESNET, (8, 56, 56, 256)):  # larger than the cache, and cache-resident
        rows = [row("max", shape, "channels-last", "float32", [(2.0, 9, 90), (4.0, 9, 90), (2.0, 9, 90)]),
                row("max", shape, "channels-last", "float16", [(1.0, 9, 90), (4.8, 9, 90), (2.4, 9, 90)]),
                row("max", shape, "channels-last", "float64", [(4.0, 9, 90), (8.0, 9, 90), (4.8, 9, 90)])]
        found = verdicts(compare, rows)
        # float16 per round 0.5, 1.2, 1.2 (median 1.2), where the medians' ratio is 2.4 / 2.0 = 1.2 too,
        # so the float64 rounds tell them apart: 1.0, 1.0, 1.2 (median 1.0) against 4.8 / 4.0 = 1.2.
        assert found[(rows[1]["case"], HALF)] == (pytest.approx(1.2), False)
        assert found[(rows[2]["case"], DOUBLE)] == (pytest.approx(1.0), True)


def test_a_round_without_a_measurement_leaves_the_verdict_missing(compare):
    rows = [row("avg", RESNET, "channels-last", "float32", [(1.0, 2.0, 90), (None, 2.0, None), (1.0, None, 90)])]
    found = verdicts(compare, rows)
    assert found[(rows[0]["case"], CEILING)] == (90, None)
    assert found[(rows[0]["case"], NUMPY)] == (pytest.approx(2.0), None)


def test_batch_one_is_judged_against_numpy_and_a_missing_measurement_is_not_a_pass(compare):
    dense = {"case": "dense 1x2048x1000", "key": ["dense", [1, 2048, 1000], None, "float32"],
             "rounds": [{"ours": {"cpu": 1.0, "opencl": 0.5}, "numpy_s": 0.9, "pct_ceiling": None}]}
    head = {"case": "head 1x2048x7x7->1000", "key": ["head", [1, 2048, 7, 7, 1000], "channels-first", "float32"],
            "rounds": [{"ours": {"cpu": None, "opencl": 0.1}, "numpy_s": 1.0, "pct_ceiling": None}]}
    found = verdicts(compare, [dense, head])
    assert found[("dense 1x2048x1000", ">= 1.0x numpy, end to end")] == (pytest.approx(0.9), False)
    assert found[("head 1x2048x7x7->1000", ">= 1.5x numpy, end to end")] == (None, None)
    lines = compare.render_targets(compare.evaluate_targets([dense, head], 32 << 20), 32 << 20, False)
    assert "0 of 2 met" in lines[1] and "NOT MET" in "\n".join(lines) and compare.MISSING in "\n".join(lines)
