"""clpool from Python: global average / max pooling, the dense layer, the fused classifier head
and class activation maps on numpy arrays, on clpool's CPU backend or an OpenCL device.

The module calls libclpool-c.so (the C ABI, Sources/CLPoolC/include/clpool.h) through ctypes:
no compiler at install time and one file that works with any CPython 3 and numpy. The library is
found through $CLPOOL_LIBRARY, else in this repository's .build/release (then .build/debug);
`make python` builds it.

Arrays:
- A C-contiguous, aligned float16/float32/float64 array is passed to clpool as it is (no copy).
  Anything else is copied once with np.require (np.ascontiguousarray) into the computation type.
- The computation type is the first array's dtype when it is float16/32/64, else float32; the
  other arrays of a call (weight, bias) are converted to it. Results have that dtype.
- Layouts: "nchw"/"channels-first" (also "ncl", "ncdhw") or "nhwc"/"channels-last" ("nlc",
  "ndhwc"); weight layouts "in-out" ([K,M], Keras) or "out-in" ([M,K], PyTorch).

Errors raise clpool.Error (a RuntimeError) with clpool's one-line message; mistakes in the
arguments raise InvalidArgumentError, which is also a ValueError.
"""

import ctypes
import json
import operator
import os
import pathlib
import threading

import numpy as np

__all__ = [
    "Backend", "Error", "InvalidArgumentError", "global_avg_pool", "global_max_pool", "dense", "head",
    "class_activation_map", "devices", "default_backend",
]


class Error(RuntimeError):
    """A failed clpool call: `status` is the C status code, `status_name` its name."""

    def __init__(self, message, status, status_name):
        super().__init__(message)
        self.status = status
        self.status_name = status_name


class InvalidArgumentError(Error, ValueError):
    """A shape, value, backend or device name clpool cannot take."""


# The enumerations of clpool.h.
_INVALID_ARGUMENT, _INVALID_CONFIGURATION = 1, 2
_TYPES = {np.dtype(np.float16): 0, np.dtype(np.float32): 1, np.dtype(np.float64): 2}
_LAYOUTS = {
    **dict.fromkeys(["nchw", "ncl", "ncdhw", "channels-first", "channels_first"], 0),
    **dict.fromkeys(["nhwc", "nlc", "ndhwc", "channels-last", "channels_last"], 1),
}
_WEIGHT_LAYOUTS = {"in-out": 0, "in_out": 0, "out-in": 1, "out_in": 1}
_ACTIVATIONS = {None: 0, "none": 0, "relu": 1, "sigmoid": 2, "softmax": 3}

_library = None
_library_lock = threading.Lock()


def _library_path():
    explicit = os.environ.get("CLPOOL_LIBRARY")
    if explicit:
        return explicit
    root = pathlib.Path(__file__).resolve().parents[2]
    for configuration in ("release", "debug"):
        candidate = root / ".build" / configuration / "libclpool-c.so"
        if candidate.exists():
            return str(candidate)
    raise OSError(f"libclpool-c.so not found in {root}/.build/release or debug: run `make python` or set CLPOOL_LIBRARY")


def _lib():
    """The C library, loaded on first use with every function's signature declared."""
    global _library
    if _library is not None:  # every call comes here: no lock once loaded
        return _library
    with _library_lock:
        if _library is None:
            library = ctypes.CDLL(_library_path())
            p, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
            shape = ctypes.POINTER(ctypes.c_int64)
            signatures = {
                "clpool_backend_create": ([ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)], i32),
                "clpool_backend_destroy": ([p], None),
                "clpool_backend_label": ([p], ctypes.c_char_p),
                "clpool_global_avg_pool": ([p, i32, p, shape, i32, i32, p], i32),
                "clpool_global_max_pool": ([p, i32, p, shape, i32, i32, p, p], i32),
                "clpool_dense": ([p, i32, p, shape, i32, p, shape, i32, i32, p, i32, p], i32),
                "clpool_head": ([p, i32, p, shape, i32, i32, p, shape, i32, i32, p, i32, p], i32),
                "clpool_class_activation_map": ([p, i32, p, shape, i32, i32, p, shape, i32, i32, i64, p], i32),
                "clpool_devices": ([ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)], i32),
                "clpool_last_error": ([], ctypes.c_char_p),
                "clpool_status_name": ([i32], ctypes.c_char_p),
            }
            for name, (arguments, result) in signatures.items():
                function = getattr(library, name)
                function.argtypes, function.restype = arguments, result
            _library = library
    return _library


def _check(status):
    """Raises the error of a nonzero status, with this thread's message (ctypes calls the C
    function and reads the message on the same thread)."""
    if status == 0:
        return
    library = _lib()
    message = library.clpool_last_error().decode("utf-8", "replace")
    name = library.clpool_status_name(status).decode()
    kind = InvalidArgumentError if status in (_INVALID_ARGUMENT, _INVALID_CONFIGURATION) else Error
    raise kind(message, status, name)


def _choice(table, value, what):
    key = value.lower() if isinstance(value, str) else value
    if key not in table:
        valid = ", ".join(sorted({k for k in table if isinstance(k, str)}))
        raise _invalid(f"{what} {value!r} is not one of {valid}")
    return table[key]


def _invalid(message):
    return InvalidArgumentError(message, _INVALID_ARGUMENT, "CLPOOL_ERROR_INVALID_ARGUMENT")


def _computation_type(x):
    """The storage type of a call on x: its own float type (in native byte order: a big-endian
    float64 array computes in float64), else float32; complex data is refused, not truncated."""
    try:
        dtype = np.asarray(x).dtype
    except (TypeError, ValueError, OverflowError) as error:  # a ragged list, an int past float64
        raise _invalid(f"cannot read the data as an array: {error}") from None
    if dtype.kind == "c":
        raise _invalid(f"{dtype} data is complex; clpool computes on real float16, float32 or float64")
    native = dtype.newbyteorder("=") if dtype.kind == "f" else dtype
    return native if native in _TYPES else np.dtype(np.float32)


def _prepared(array, dtype):
    """`array` itself when clpool can read it in place; else its one contiguous copy in `dtype`."""
    if type(array) is np.ndarray and array.dtype == dtype:
        flags = array.flags
        if flags.c_contiguous and flags.aligned:  # the common case, checked without np.require's cost
            return array
    try:
        if np.asarray(array).dtype.kind == "c":  # numpy would drop the imaginary part with a warning
            raise _invalid("complex data; clpool computes on real float16, float32 or float64")
        return np.require(array, dtype=dtype, requirements=("C_CONTIGUOUS", "ALIGNED"))
    except InvalidArgumentError:
        raise
    except (TypeError, ValueError, OverflowError) as error:  # strings, objects, ragged lists, huge ints
        raise _invalid(f"cannot read the data as {np.dtype(dtype)}: {error}") from None


# The int64_t[rank] types, made once: a call's shape costs one construction, not a type's too.
_SHAPE_TYPES = [ctypes.c_int64 * max(rank, 1) for rank in range(33)]


def _shape(array):
    return _SHAPE_TYPES[array.ndim](*array.shape), array.ndim


def _pointer(array):
    """The address of an array's first element. Through the buffer protocol when the array is
    writable and not empty (a third of `array.ctypes.data`'s cost, which counts on a call of a few
    microseconds); otherwise through `ctypes.data`."""
    if array is None:
        return None
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError):
        return array.ctypes.data


def _output(shape, dtype):
    """A new array for a result, or None (NULL) when the inputs' ranks give it no shape: the C
    call then reports what is wrong with them."""
    return None if shape is None else np.empty(shape, dtype=dtype)


def _pooled_shape(shape, layout):
    if not 3 <= len(shape) <= 5:
        return None
    return (shape[0], shape[1] if layout == 0 else shape[-1])


def _kept_shape(shape, layout):
    ones = (1,) * (len(shape) - 2)
    return (shape[0], shape[1]) + ones if layout == 0 else (shape[0],) + ones + (shape[-1],)


def _bias(b, w, weight_layout, dtype):
    """b as the C call reads it, [M] for the weight's M outputs: the call takes a bare pointer, so
    the length is checked here."""
    if b is None:
        return None
    b = _prepared(b, dtype)
    outputs = (w.shape[1] if weight_layout == 0 else w.shape[0]) if w.ndim == 2 else None
    if b.ndim != 1 or (outputs is not None and b.shape[0] != outputs):
        wanted = f"[{outputs}]" if outputs is not None else "[M]"
        raise _invalid(f"bias has shape {list(b.shape)}; it must be {wanted}, one per output of the weight")
    return b


def _product_shape(x, w, weight_layout):
    if x.ndim != 2 or w.ndim != 2:
        return None
    return (x.shape[0], w.shape[1] if weight_layout == 0 else w.shape[0])


class Backend:
    """A clpool backend: "cpu", "opencl" (one device) or "auto" (an OpenCL GPU or accelerator
    when there is one, else the CPU); None reads $CLPOOL_BACKEND. `device` is an index or a
    substring of a device's name (None reads $CLPOOL_DEVICE). Safe to use from several threads;
    ctypes releases the GIL during each call."""

    def __init__(self, kind=None, device=None):
        handle = ctypes.c_void_p()
        encode = lambda text: None if text is None else str(text).encode()
        _check(_lib().clpool_backend_create(encode(kind), encode(device), ctypes.byref(handle)))
        # Held here so that a backend collected at interpreter exit can still free itself.
        self._destroy = _lib().clpool_backend_destroy
        self._handle = handle

    def close(self):
        """Frees the backend now (otherwise when the object is collected)."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._destroy(handle)

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    @property
    def handle(self):
        if not self._handle:
            raise _invalid("the backend is closed")
        return self._handle

    @property
    def label(self):
        """"cpu: <processor>" or "opencl: <device> (<platform>)"."""
        return _lib().clpool_backend_label(self.handle).decode()

    def __repr__(self):
        return f"clpool.Backend({self.label!r})" if self._handle else "clpool.Backend(closed)"

    def global_avg_pool(self, x, layout="nchw", keepdims=False):
        """Mean over the spatial axes of x [N,C,...] (or [N,...,C]): [N,C], or the input's rank
        with the spatial axes as 1s when keepdims."""
        return self._pool("avg", x, layout, keepdims, False)

    def global_max_pool(self, x, layout="nchw", keepdims=False, return_indices=False):
        """Maximum over the spatial axes (NaN when a plane has one); with return_indices also the
        flat spatial position of each plane's first maximum (first NaN), int64 [N,C]."""
        return self._pool("max", x, layout, keepdims, return_indices)

    def _pool(self, operation, x, layout, keepdims, return_indices):
        layout = _choice(_LAYOUTS, layout, "layout")
        x = _prepared(x, _computation_type(x))
        planes = _pooled_shape(x.shape, layout)
        values = _output(planes, x.dtype)
        indices = _output(planes, np.int64) if return_indices else None
        arguments = (self.handle, _TYPES[x.dtype], _pointer(x), *_shape(x), layout, _pointer(values))
        if operation == "avg":
            _check(_lib().clpool_global_avg_pool(*arguments))
        else:
            _check(_lib().clpool_global_max_pool(*arguments, _pointer(indices)))
        if keepdims:
            values = values.reshape(_kept_shape(x.shape, layout))
        return (values, indices) if return_indices else values

    def dense(self, x, w, b=None, weight_layout="in-out", activation=None):
        """activation(x . W + b) of x [N,K] and W [K,M] ("in-out") or [M,K] ("out-in"): [N,M]."""
        weight_layout = _choice(_WEIGHT_LAYOUTS, weight_layout, "weight layout")
        activation = _choice(_ACTIVATIONS, activation, "activation")
        dtype = _computation_type(x)
        x, w = _prepared(x, dtype), _prepared(w, dtype)
        b = _bias(b, w, weight_layout, dtype)
        y = _output(_product_shape(x, w, weight_layout), dtype)
        _check(_lib().clpool_dense(
            self.handle, _TYPES[dtype], _pointer(x), *_shape(x), _pointer(w), *_shape(w), weight_layout, _pointer(b),
            activation, _pointer(y)))
        return y

    def head(self, x, w, b=None, layout="nchw", weight_layout="in-out", activation=None):
        """The fused classifier head, dense(global_avg_pool(x), w, b): [N,M]."""
        layout = _choice(_LAYOUTS, layout, "layout")
        weight_layout = _choice(_WEIGHT_LAYOUTS, weight_layout, "weight layout")
        activation = _choice(_ACTIVATIONS, activation, "activation")
        dtype = _computation_type(x)
        x, w = _prepared(x, dtype), _prepared(w, dtype)
        b = _bias(b, w, weight_layout, dtype)
        planes = _pooled_shape(x.shape, layout)
        y = _output(None if planes is None or w.ndim != 2 else (planes[0], w.shape[1] if weight_layout == 0 else w.shape[0]), dtype)
        _check(_lib().clpool_head(
            self.handle, _TYPES[dtype], _pointer(x), *_shape(x), layout, _pointer(w), *_shape(w), weight_layout,
            _pointer(b), activation, _pointer(y)))
        return y

    def class_activation_map(self, x, w, class_index, layout="nchw", weight_layout="in-out"):
        """cam[h,w] = sum_c W[c,class_index] * x[c,h,w] (bias excluded) of one sample's features
        x [C,H,W] or [1,C,H,W] (channels-last [H,W,C] or [1,H,W,C]): [H,W]."""
        layout = _choice(_LAYOUTS, layout, "layout")
        weight_layout = _choice(_WEIGHT_LAYOUTS, weight_layout, "weight layout")
        index = operator.index(class_index)  # an integer: 2.5 is refused, not truncated
        if not -(1 << 63) <= index < 1 << 63:  # ctypes would wrap it into int64 silently
            raise _invalid(f"class {index} is out of range")
        dtype = _computation_type(x)
        x, w = _prepared(x, dtype), _prepared(w, dtype)
        sample = x.shape[1:] if x.ndim == 4 else x.shape
        spatial = None if len(sample) != 3 else (sample[1:] if layout == 0 else sample[:2])
        cam = _output(spatial, dtype)
        _check(_lib().clpool_class_activation_map(
            self.handle, _TYPES[dtype], _pointer(x), *_shape(x), layout, _pointer(w), *_shape(w), weight_layout,
            index, _pointer(cam)))
        return cam


def devices():
    """The OpenCL devices: a list of {"index", "name", "platform", "type", "storage_types",
    "global_memory_bytes"} (empty without OpenCL)."""
    library, length = _lib(), ctypes.c_size_t()
    _check(library.clpool_devices(None, 0, ctypes.byref(length)))
    buffer = ctypes.create_string_buffer(length.value + 1)
    _check(library.clpool_devices(buffer, len(buffer), ctypes.byref(length)))
    return json.loads(buffer.value.decode())


_default = None
_default_lock = threading.Lock()


def default_backend():
    """The backend the module-level functions use, created on first use: $CLPOOL_BACKEND and
    $CLPOOL_DEVICE when set, else auto."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Backend()
        return _default


def global_avg_pool(x, layout="nchw", keepdims=False):
    return default_backend().global_avg_pool(x, layout=layout, keepdims=keepdims)


def global_max_pool(x, layout="nchw", keepdims=False, return_indices=False):
    return default_backend().global_max_pool(x, layout=layout, keepdims=keepdims, return_indices=return_indices)


def dense(x, w, b=None, weight_layout="in-out", activation=None):
    return default_backend().dense(x, w, b, weight_layout=weight_layout, activation=activation)


def head(x, w, b=None, layout="nchw", weight_layout="in-out", activation=None):
    return default_backend().head(x, w, b, layout=layout, weight_layout=weight_layout, activation=activation)


def class_activation_map(x, w, class_index, layout="nchw", weight_layout="in-out"):
    return default_backend().class_activation_map(x, w, class_index, layout=layout, weight_layout=weight_layout)


for _method in ("global_avg_pool", "global_max_pool", "dense", "head", "class_activation_map"):
    globals()[_method].__doc__ = getattr(Backend, _method).__doc__ + "\n\nOn default_backend()."
