"""The Python module against numpy in float64, on random data and awkward shapes, on every
backend: `python3 -m pytest Tests/python` (after `make python`). An OpenCL backend that cannot be
created is skipped with its reason, except in CI (CI=true), where it fails."""
import os
import threading

import numpy as np
import pytest

import clpool

@pytest.fixture(scope="module", params=["cpu", "opencl"])
def backend(request):
    try:
        created = clpool.Backend(request.param)
    except clpool.Error as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs an OpenCL device: {error}")
        print(f"note: {request.param} tests skipped: {error}")
        pytest.skip(f"no {request.param} backend here: {error}")
    yield created
    created.close()


# SPEC.md's tolerances against a float64 reference.
PRODUCT_TOLERANCE = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}


def assert_pooled_close(got, x64, reference, dtype, axes):
    """|out − ref| ≤ tolerance · mean|x| of each plane (float16 adds its output rounding)."""
    scale = np.mean(np.nan_to_num(np.abs(x64), nan=0.0), axis=axes)  # NaN planes are compared apart
    bound = {np.float16: 2e-3 * scale + 2**-11 * np.abs(reference), np.float32: 4e-6 * scale, np.float64: 1e-12 * scale}[dtype]
    got = got.astype(np.float64)
    finite = np.isfinite(reference)
    assert np.array_equal(np.isnan(got), np.isnan(reference))
    assert np.all(np.abs(got - reference)[finite] <= bound[finite]), np.max(np.abs(got - reference)[finite] - bound[finite])


def assert_product_close(got, reference, dtype, term_scale=None):
    """SPEC's ‖out − ref‖ / ‖ref‖. With `term_scale` (each output's √Σ(x·w)², the size a sum of
    those terms has when their signs are random), ‖ref‖ is floored at its norm: where the terms
    of a few outputs cancel to near 0, ‖ref‖ alone would ask more than float32 holds, as
    CrossCheck.dense's magnitudes say for the selftest."""
    scale = max(np.linalg.norm(reference), 0.0 if term_scale is None else np.linalg.norm(term_scale), 1e-300)
    error = np.linalg.norm(got.astype(np.float64) - reference) / scale
    assert error <= PRODUCT_TOLERANCE[dtype], error


def dense_term_scale(x, w, b, activation):
    """√(Σ_k (x_k·w_k)² + b²) for each output a linear or ReLU dense layer keeps (0 where ReLU
    zeroes it); None for sigmoid and softmax, whose outputs are not sums of these terms."""
    if activation not in (None, "relu"):
        return None
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    scale = np.sqrt(np.square(x64) @ np.square(w64) + (0.0 if b is None else np.square(b.astype(np.float64))))
    return scale if activation is None else np.where(x64 @ w64 + (0.0 if b is None else b.astype(np.float64)) > 0, scale, 0.0)


def channels_last(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


POOL_SHAPES = [(1, 1, 1), (1, 1, 1, 1), (2, 3, 5, 7), (3, 7, 11, 13), (1, 5, 2, 3, 7), (2, 1, 1, 31), (1, 2, 1021)]


@pytest.mark.parametrize("shape", POOL_SHAPES)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_global_avg_pool_matches_numpy(backend, rng, shape, layout, dtype):
    x = (rng.standard_normal(shape) + 0.5).astype(dtype)
    x.reshape(-1)[-1] = np.nan  # data, not an error: the last plane's mean is NaN
    axes = tuple(range(2, len(shape)))
    reference = x.astype(np.float64).mean(axis=axes)
    given = x if layout == "nchw" else channels_last(x)
    got = backend.global_avg_pool(given, layout=layout)
    assert got.dtype == dtype and got.shape == shape[:2]
    assert_pooled_close(got, x.astype(np.float64), reference, dtype, axes)
    kept = backend.global_avg_pool(given, layout=layout, keepdims=True)
    expected_shape = reference.shape + (1,) * len(axes) if layout == "nchw" else (shape[0],) + (1,) * len(axes) + (shape[1],)
    assert kept.shape == expected_shape
    assert np.array_equal(kept.reshape(got.shape), got, equal_nan=True)


@pytest.mark.parametrize("shape", POOL_SHAPES)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_max_pool_with_nan_and_ties_matches_numpy(backend, rng, shape, layout, dtype):
    # Few distinct values, so planes have tied maxima; some NaNs.
    x = rng.integers(-3, 4, size=shape).astype(dtype)
    planes = x.reshape(shape[0], shape[1], -1)
    if planes.shape[2] > 1:
        planes[0, 0, planes.shape[2] // 2] = np.nan
    x = planes.reshape(shape)
    reference, first = planes.max(axis=2), planes.argmax(axis=2)  # numpy: NaN wins, first occurrence
    given = x if layout == "nchw" else channels_last(x)
    values, indices = backend.global_max_pool(given, layout=layout, return_indices=True)
    assert values.dtype == dtype and indices.dtype == np.int64
    assert np.array_equal(values, reference, equal_nan=True)
    assert np.array_equal(indices, first)
    assert np.array_equal(backend.global_max_pool(given, layout=layout), values, equal_nan=True)


DENSE_SHAPES = [(1, 1, 1), (3, 17, 5), (7, 13, 11), (2, 1, 3), (5, 64, 1)]


@pytest.mark.parametrize("n,k,m", DENSE_SHAPES)
@pytest.mark.parametrize("weight_layout", ["in-out", "out-in"])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "softmax"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dense_matches_numpy(backend, rng, n, k, m, weight_layout, activation, dtype):
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in [(n, k), (k, m), (m,)])
    given = w if weight_layout == "in-out" else np.ascontiguousarray(w.T)
    reference = activate(x.astype(np.float64) @ w.astype(np.float64) + b, activation)
    got = backend.dense(x, given, b, weight_layout=weight_layout, activation=activation)
    assert got.dtype == dtype and got.shape == (n, m)
    assert_product_close(got, reference, dtype, dense_term_scale(x, w, b, activation))
    no_bias = activate(x.astype(np.float64) @ w.astype(np.float64), activation)
    got = backend.dense(x, given, weight_layout=weight_layout, activation=activation)
    assert_product_close(got, no_bias, dtype, dense_term_scale(x, w, None, activation))


def activate(y, activation):
    if activation == "relu":
        return np.maximum(y, 0)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-y))
    if activation == "softmax":
        e = np.exp(y - y.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return y


@pytest.mark.parametrize("shape,m", [((1, 1, 1, 1), 1), ((2, 6, 3, 3), 4), ((3, 13, 7, 7), 11), ((1, 5, 17), 3)])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_head_matches_dense_of_the_mean(backend, rng, shape, m, layout, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    w, b = rng.standard_normal((shape[1], m)).astype(dtype), rng.standard_normal(m).astype(dtype)
    pooled = x.astype(np.float64).mean(axis=tuple(range(2, len(shape))))
    reference = activate(pooled @ w.astype(np.float64) + b.astype(np.float64), "softmax")
    given = x if layout == "nchw" else channels_last(x)
    got = backend.head(given, w, b, layout=layout, activation="softmax")
    assert got.dtype == dtype and got.shape == (shape[0], m)
    assert_product_close(got, reference, dtype)


@pytest.mark.parametrize("shape", [(1, 1, 1), (6, 3, 4), (1, 7, 5, 11)])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("weight_layout", ["in-out", "out-in"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_class_activation_map_matches_numpy(backend, rng, shape, layout, weight_layout, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    sample = x.reshape(shape[-3:]).astype(np.float64)
    m = 5
    w = rng.standard_normal((sample.shape[0], m)).astype(dtype)
    k = m - 2
    reference = np.einsum("c,chw->hw", w[:, k].astype(np.float64), sample)
    given = x if layout == "nchw" else np.ascontiguousarray(np.moveaxis(x, -3, -1))
    weight = w if weight_layout == "in-out" else np.ascontiguousarray(w.T)
    got = backend.class_activation_map(given, weight, k, layout=layout, weight_layout=weight_layout)
    assert got.dtype == dtype and got.shape == sample.shape[1:]
    assert_product_close(got, reference, dtype)


def test_contiguous_arrays_are_not_copied_and_others_are_once():
    x = np.ones((2, 3, 4, 5), dtype=np.float32)
    assert clpool._prepared(x, x.dtype) is x
    view = x.transpose(0, 1, 3, 2)
    copy = clpool._prepared(view, view.dtype)
    assert copy is not view and copy.flags.c_contiguous and np.array_equal(copy, view)
    # A strided view computes the same as its contiguous copy.
    assert np.array_equal(clpool.global_avg_pool(view), clpool.global_avg_pool(copy))


def test_read_only_and_empty_arrays():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    x.flags.writeable = False
    assert np.array_equal(clpool.global_avg_pool(x), [[5.5, 17.5]])
    assert clpool.global_avg_pool(np.zeros((0, 3, 2, 2), np.float32)).shape == (0, 3)
    assert clpool.dense(np.zeros((0, 3)), np.zeros((3, 2))).shape == (0, 2)


def test_integer_inputs_compute_in_float32():
    got = clpool.global_avg_pool(np.arange(8).reshape(1, 2, 4))
    assert got.dtype == np.float32 and np.array_equal(got, [[1.5, 5.5]])


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda b: b.global_avg_pool(np.zeros((3, 3), np.float32)), "rank 2"),
        (lambda b: b.global_avg_pool(np.zeros((1, 2, 0, 3), np.float32)), "empty spatial extent"),
        (lambda b: b.global_max_pool(np.zeros((1, 2, 3), np.float32), layout="nwhc"), "layout 'nwhc'"),
        (lambda b: b.dense(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32)), "2x3"),
        (lambda b: b.dense(np.zeros((2, 3)), np.zeros((3, 1)), activation="tanh"), "activation 'tanh'"),
        (lambda b: b.head(np.zeros((1, 3, 2, 2), np.float32), np.zeros((2, 3), np.float32)), "2x3"),
        (lambda b: b.class_activation_map(np.zeros((2, 2, 2), np.float32), np.zeros((2, 3), np.float32), 3), "class 3 is out of range"),
        (lambda b: b.class_activation_map(np.zeros((2, 2, 2, 2), np.float32), np.zeros((2, 3), np.float32), 0), "one sample"),
        # ctypes would wrap these into int64 (2**64 + 1 as class 1)
        (lambda b: b.class_activation_map(np.zeros((2, 2, 2), np.float32), np.zeros((2, 3), np.float32), 2**64 + 1),
         "class 18446744073709551617 is out of range"),
        (lambda b: b.class_activation_map(np.zeros((2, 2, 2), np.float32), np.zeros((2, 3), np.float32), -(2**70)), "out of range"),
        # the C call takes the bias as a bare pointer: a short one would be read past its end
        (lambda b: b.dense(np.zeros((2, 3), np.float32), np.zeros((3, 4000), np.float32), np.ones(1, np.float32)),
         "bias has shape [1]; it must be [4000]"),
        (lambda b: b.dense(np.zeros((2, 3), np.float32), np.zeros((5, 3), np.float32), np.ones(3, np.float32), weight_layout="out-in"),
         "it must be [5]"),
        (lambda b: b.dense(np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float32), np.ones((1, 5), np.float32)), "[1, 5]"),
        (lambda b: b.dense(np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float32), np.float32(1)), "bias has shape []"),
        (lambda b: b.head(np.zeros((1, 3, 2, 2), np.float32), np.zeros((3, 5), np.float32), np.ones(9, np.float32)), "it must be [5]"),
    ],
)
def test_mistakes_raise_one_line_value_errors(backend, call, words):
    with pytest.raises(clpool.InvalidArgumentError) as raised:
        call(backend)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, RuntimeError)
    assert words in str(raised.value) and "\n" not in str(raised.value)
    assert raised.value.status_name == "CLPOOL_ERROR_INVALID_ARGUMENT"


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(clpool.InvalidArgumentError, match="valid values: auto, cpu, opencl") as raised:
        clpool.Backend("gpu")
    assert raised.value.status_name == "CLPOOL_ERROR_INVALID_CONFIGURATION"
    assert "--backend" not in str(raised.value)  # a Python caller passed no command-line option


def test_byte_swapped_arrays_compute_in_their_own_type(backend, rng):
    x = rng.standard_normal((3, 4, 5, 5))
    swapped = x.astype(">f8")
    assert backend.global_avg_pool(swapped).dtype == np.float64
    assert backend.global_avg_pool(swapped).tobytes() == backend.global_avg_pool(x).tobytes()
    assert backend.global_max_pool(x.astype(">f2")).dtype == np.float16


def test_complex_arrays_are_refused(backend):
    with pytest.raises(clpool.InvalidArgumentError, match="complex"):
        backend.global_avg_pool(np.zeros((1, 2, 3, 3), np.complex64))
    for w, b in [(np.zeros((3, 2), np.complex64), None), (np.zeros((3, 2), np.float32), np.zeros(2, np.complex128))]:
        with pytest.raises(clpool.InvalidArgumentError, match="complex"):
            backend.dense(np.zeros((1, 3), np.float32), w, b)


def test_data_that_is_not_numbers_is_refused(backend):
    """Strings, objects that are no numbers and ragged lists: clpool's InvalidArgumentError,
    naming what it could not read, not numpy's bare ValueError."""
    for x in [[[[["a"]]]], np.array([[[["x", "y"]]]]), [[[[1.0, 2.0], [3.0]]]], np.array([[[[{}]]]], dtype=object)]:
        with pytest.raises(clpool.InvalidArgumentError, match="cannot read the data"):
            backend.global_avg_pool(x)
    with pytest.raises(clpool.InvalidArgumentError, match="cannot read the data"):
        backend.dense(np.zeros((1, 3), np.float32), [["a", "b"]] * 3)
    weight, row = np.ones((2, 2), np.float32), np.ones((1, 2), np.float32)
    for call in [lambda: backend.dense(row, [[1, 2], [3]]), lambda: backend.dense(row, weight, [[1], [2, 3]]),
                 lambda: backend.global_avg_pool([[[[10**400]]]]), lambda: backend.dense(row, weight, [10**400, 1])]:
        with pytest.raises(clpool.InvalidArgumentError, match="cannot read the data"):
            call()
    assert backend.global_avg_pool(np.ones((1, 2, 2, 2), dtype=object)).tolist() == [[1.0, 1.0]]  # numbers as objects


def test_a_class_index_must_be_an_integer(backend):
    with pytest.raises(TypeError):
        backend.class_activation_map(np.zeros((2, 2, 2), np.float32), np.zeros((2, 3), np.float32), 1.5)


def test_devices_and_default_backend():
    listed = clpool.devices()
    assert isinstance(listed, list)
    for device in listed:
        assert {"index", "name", "platform", "type", "storage_types"} <= device.keys()
    assert clpool.default_backend() is clpool.default_backend()
    assert ":" in clpool.default_backend().label


def test_calls_from_several_threads_agree(rng):
    x = rng.standard_normal((4, 64, 7, 7)).astype(np.float32)
    expected = clpool.global_avg_pool(x)
    results = [None] * 8

    def work(i):
        results[i] = clpool.global_avg_pool(x)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(result, expected) for result in results)
