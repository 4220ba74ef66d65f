# EvalPlus driver for the weave sandbox (embedded in the Rust binary with include_str!).
#
# The Rust side (codegen-pipeline/src/evalplus/check.rs) builds one program per run: this
# file, then a single call
#
#     _weave_evalplus(JOB, INPUTS, EXPECTED)
#
# where every argument is a string literal (JSON text, escaped as a JSON string, which is
# also a valid Python string literal):
#
#   JOB       {"mode": "ground_truth" | "check", "dataset": "humaneval" | "mbpp",
#              "task_id", "entry_point", "code", ...}
#   INPUTS    ground_truth: {"base": [...], "plus": [...]}; check: [...] (one part). Each
#             input is the list of arguments, as JSON (NaN and Infinity allowed, as in the
#             EvalPlus files; Python's json reads them).
#   EXPECTED  check only: the ground truth's outputs for these inputs, as ground_truth
#             mode wrote them (chunks of pickles, see _ChunkWriter).
#
# ground_truth mode runs the canonical solution on every input, the way EvalPlus's
# `trusted_exec` does (a deep copy of each input, the time of each call), and writes one
# JSON line after a marker on stdout: {"base": {"time": [...], "chunks": [...]}, "plus": ...}.
#
# check mode runs a candidate on one part's inputs the way EvalPlus's `unsafe_execute` does
# (with fast_check: it stops at the first failing input) and compares each output with its
# expected value by EvalPlus's rules. It returns normally only when every input passed, so
# the sandbox's nonce proves a pass; otherwise it raises EvalPlusVerdict whose message is
# "fail <index>: <why>" (the input at <index> failed), "fail code: <why>" (the code did not
# define the entry point) or "timeout <index>: <why>" (the whole run went past its deadline).
#
# Everything here is data handling and comparison; no dataset or EvalPlus code is copied.
import io as _io
import json as _json
import math as _math
import os as _os
import pickle as _pickle
import signal as _signal
import sys as _sys
import time as _time

_MARKER = "\n@@weave-evalplus-ground-truth@@\n"

_isinstance = isinstance
_type = type
_len = len
_abs = abs
_float = float
_complex = complex
_int = int
_bool = bool
_str = str
_list = list
_tuple = tuple
_dict = dict
_set = set
_frozenset = frozenset
_bytes = bytes
_repr = repr
_range = range
_enumerate = enumerate
_zip = zip
_min = min
_max = max
_sum = sum
_exec = exec
_os_exit = _os._exit
_json_loads = _json.loads
_pickle_dumps = _pickle.dumps
_Unpickler = _pickle.Unpickler
_BytesIO = _io.BytesIO
_monotonic = _time.monotonic
_perf_counter = _time.perf_counter
_setitimer = _signal.setitimer
_ITIMER_REAL = _signal.ITIMER_REAL
_isfinite = _math.isfinite
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class EvalPlusVerdict(Exception):
    """The run's outcome when it is not a pass (the sandbox reports the message)."""


class TimeoutException(Exception):
    """Raised in the candidate when an input's time limit is reached (as EvalPlus)."""


class _RecordError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# Expected outputs are pickled, as EvalPlus caches them: exact types (tuple vs list,
# Counter, OrderedDict), huge integers and NaN all survive. An output whose class cannot
# be pickled (one defined by the solution itself, e.g. a namedtuple) is recorded as the
# builtin container or scalar it derives from, which compares equal to it.


def _plain(x):
    for base in (_bool, _int, _float, _complex, _str, _bytes):
        if _isinstance(x, base):
            return base(x)
    if x is None:
        return None
    if _isinstance(x, _dict):
        return {_plain(k): _plain(v) for k, v in x.items()}
    for base in (_list, _tuple, _set, _frozenset):
        if _isinstance(x, base):
            return base(_plain(v) for v in x)
    raise _RecordError("cannot record an output of type " + _type(x).__name__)


def _pickled(x):
    try:
        return _pickle_dumps(x, 4)
    except Exception:
        return _pickle_dumps(_plain(x), 4)


# ---------------------------------------------------------------------------------------
# Inputs. HumanEval+ inputs are used as JSON gives them. MBPP+ stores tuples, sets and
# complex numbers as JSON lists and strings; EvalPlus turns them back per task
# (`mbpp_deserialize_inputs`). The same conversions, as a table of task numbers.


def _tuples(xs):
    return [_tuple(x) for x in xs]


def _tuples_deep(x):
    if _isinstance(x, _list):
        return _tuple([_tuples_deep(v) for v in x])
    return x


def _mbpp_args_converter(number):
    # Returns a function mapping one input (its argument list) to the converted one.
    if number in _MBPP_EACH_ARG_TUPLE:
        return _tuples
    if number in _MBPP_EACH_ARG_LIST_OF_TUPLES:
        return lambda args: [_tuples(arg) for arg in args]
    if number in _MBPP_FIRST_LIST_OF_TUPLES:
        return lambda args: [_tuples(args[0])] + [args[1]]
    if number in (106, 750):
        return lambda args: [args[0]] + [_tuple(args[1])]
    if number == 115:
        # Non-empty lists become sets; an empty one becomes an empty dict (as upstream).
        return lambda args: [
            [_set(v) if _isinstance(v, _list) and _len(v) else {} for v in args[0]]
        ]
    if number == 124:
        return lambda args: (_float(args[0]), _complex(args[1]))
    if number in _MBPP_FIRST_ARG_TUPLE:
        return lambda args: [_tuple(args[0])] + [args[1]]
    if number in _MBPP_LIST_OF_TUPLES_THEN_TUPLE:
        return lambda args: _tuples([_tuples(arg) for arg in args])
    if number == 278:
        return lambda args: _tuples(
            [[_tuple(v) if _isinstance(v, _list) else v for v in args[0]]]
        )
    if number == 307:
        return lambda args: [_tuple(args[0])] + [args[1], args[2]]
    if number == 722:
        return lambda args: [{k: _tuple(v) for k, v in args[0].items()}] + args[1:]
    if number == 252:
        return lambda args: [_complex(args[0])]
    if number in (580, 615, 791):
        return _tuples_deep
    return None


_MBPP_EACH_ARG_TUPLE = frozenset(
    [2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616]
    + [630, 726, 740, 744, 809]
)
_MBPP_EACH_ARG_LIST_OF_TUPLES = frozenset(
    [63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780]
)
_MBPP_FIRST_LIST_OF_TUPLES = frozenset([75, 413, 444, 753])
_MBPP_FIRST_ARG_TUPLE = frozenset([250, 405, 446, 617, 720, 763, 808])
_MBPP_LIST_OF_TUPLES_THEN_TUPLE = frozenset([259, 401, 445])


def _convert_inputs(job, inputs):
    if job["dataset"] == "mbpp":
        convert = _mbpp_args_converter(_int(job["task_id"].rpartition("/")[2]))
        if convert is not None:
            inputs = [convert(args) for args in inputs]
    return inputs


# ---------------------------------------------------------------------------------------
# Comparison (EvalPlus's `unsafe_execute` rules, numpy-free).

# Tasks whose outputs are compared as sets (MBPP+).
_MBPP_SET_EQ = frozenset(
    [
        "similar_elements",
        "find_char_long",
        "common_in_nested_lists",
        "extract_singly",
        "larg_nnum",
        "intersection_array",
        "find_dissimilar",
        "Diff",
    ]
)
# Tasks whose expected output is only "not None" (MBPP+).
_MBPP_NOT_NONE = frozenset(["check_str", "text_match_three", "text_starta_endb"])


def _pyramid_surface(base_edge, height):
    # Mbpp/581: the height is the apex's distance from the base. Same operation order as
    # upstream, so that rounding ties land the same way.
    slant = _math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant) / 2)


def _digit_distance(a, b):
    # Mbpp/558: both numbers zero-padded to the same length.
    sa, sb = _str(a), _str(b)
    width = _max(_len(sa), _len(sb))
    sa, sb = sa.zfill(width), sb.zfill(width)
    return _sum(_abs(_int(x) - _int(y)) for x, y in _zip(sa, sb))


def _poly(xs, x):
    # HumanEval/32: the polynomial with coefficients xs at x.
    return _sum([c * _math.pow(x, i) for i, c in _enumerate(xs)])


def is_floats(x):
    """A float, or a non-empty list or tuple of floats (EvalPlus's `is_floats`)."""
    if _isinstance(x, _float):
        return True
    if _isinstance(x, (_list, _tuple)) and x:
        return all(_isinstance(v, _float) for v in x)
    return False


def _as_array(x):
    # (shape, flat values) of a number or a regular nested list/tuple of numbers, as numpy
    # would build a numeric array; anything else raises, as numpy's arithmetic would.
    if _isinstance(x, (_bool, _int)):
        if not _isinstance(x, _bool) and not (_INT64_MIN <= x <= _INT64_MAX):
            raise TypeError("integer does not fit a numeric array")
        return (), [x]
    if _isinstance(x, (_float, _complex)):
        return (), [x]
    if _isinstance(x, (_list, _tuple)):
        parts = [_as_array(v) for v in x]
        if not parts:
            return (0,), []
        shape = parts[0][0]
        flat = []
        for s, values in parts:
            if s != shape:
                raise ValueError("ragged sequence")
            flat.extend(values)
        return (_len(x),) + shape, flat
    raise TypeError("not a number: " + _type(x).__name__)


def _broadcast_index(shape, full, index):
    # Flat index into an array of `shape` for the multi-index `index` of the broadcast
    # shape `full` (numpy broadcasting: missing leading dims and dims of size 1 repeat).
    offset = _len(full) - _len(shape)
    flat = 0
    for d, size in _enumerate(shape):
        i = index[d + offset]
        flat = flat * size + (0 if size == 1 else i)
    return flat


def allclose(a, b, rtol, atol):
    """numpy.allclose(a, b, rtol, atol) with equal_nan=False, for numbers and regular
    nested lists/tuples of numbers."""
    sa, fa = _as_array(a)
    sb, fb = _as_array(b)
    n = _max(_len(sa), _len(sb))
    pa = (1,) * (n - _len(sa)) + sa
    pb = (1,) * (n - _len(sb)) + sb
    full = []
    for x, y in _zip(pa, pb):
        if x != y and x != 1 and y != 1:
            raise ValueError("shapes do not broadcast")
        full.append(y if x == 1 else x)
    total = 1
    for size in full:
        total *= size
    for k in _range(total):
        index = []
        rest = k
        for size in reversed(full):
            index.append(rest % size)
            rest //= size
        index.reverse()
        x = fa[_broadcast_index(sa, full, index)]
        y = fb[_broadcast_index(sb, full, index)]
        if _isinstance(x, _complex) or _isinstance(y, _complex):
            x, y = _complex(x), _complex(y)
            finite = _isfinite(x.real) and _isfinite(x.imag)
            finite = finite and _isfinite(y.real) and _isfinite(y.imag)
        else:
            x, y = _float(x), _float(y)
            finite = _isfinite(x) and _isfinite(y)
        if finite:
            if not (_abs(x - y) <= atol + rtol * _abs(y)):
                return False
        elif not (x == y):
            return False
    return True


def _short(x):
    try:
        text = _repr(x)
    except BaseException:
        return "<unprintable " + _type(x).__name__ + ">"
    if _type(text) is not _str:
        return "<unprintable>"
    return text if _len(text) <= 120 else text[:117] + "..."


# ---------------------------------------------------------------------------------------
# Running code.


class _Sink(_io.StringIO):
    """Where the candidate's stdout, stderr and stdin go (EvalPlus's swallow_io): writes
    are dropped, reads fail."""

    def write(self, s):
        return _len(s)

    def read(self, *args, **kwargs):
        raise OSError

    def readline(self, *args, **kwargs):
        raise OSError

    def readlines(self, *args, **kwargs):
        raise OSError

    def readable(self, *args, **kwargs):
        return False


class _Swallow:
    def __init__(self):
        self.sink = _Sink()

    def __enter__(self):
        self.saved = (_sys.stdout, _sys.stderr, _sys.stdin)
        _sys.stdout = _sys.stderr = _sys.stdin = self.sink

    def __exit__(self, *exc):
        _sys.stdout, _sys.stderr, _sys.stdin = self.saved
        return False


def _reliability_guard():
    # What EvalPlus's `reliability_guard` takes away from the candidate (the sandbox does
    # the real isolation; this keeps verdicts the same as EvalPlus's for code that uses
    # these). Memory limits are the sandbox's.
    import builtins
    import faulthandler

    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    builtins.help = None
    builtins.open = None
    _os.environ["OMP_NUM_THREADS"] = "1"
    for name in (
        "kill system putenv remove removedirs rmdir fchdir setuid fork forkpty killpg "
        "rename renames truncate replace unlink fchmod fchown chmod chown chroot "
        "lchflags lchmod lchown getcwd chdir"
    ).split():
        setattr(_os, name, None)
    shutil = _sys.modules.get("shutil")
    if shutil is not None:
        shutil.rmtree = shutil.move = shutil.chown = None
    subprocess = _sys.modules.get("subprocess")
    if subprocess is not None:
        subprocess.Popen = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        _sys.modules[name] = None


# Expected outputs travel as chunks: consecutive outputs' pickles, concatenated,
# zlib-compressed and base64-encoded, about this many bytes of pickles per chunk (a larger
# output is a chunk of its own). The check decodes one chunk at a time, so a problem whose
# outputs are gigabytes once decoded (HumanEval/130) never holds them all.
_CHUNK_BYTES = 1 << 18


class _ChunkWriter:
    def __init__(self):
        import binascii
        import zlib

        self.compress = zlib.compress
        self.b2a = binascii.b2a_base64
        self.chunks = []
        self.pickles = []
        self.size = 0

    def add(self, data):
        self.pickles.append(data)
        self.size += _len(data)
        if self.size >= _CHUNK_BYTES:
            self.flush()

    def flush(self):
        if self.pickles:
            data = b"".join(self.pickles)
            blob = self.b2a(self.compress(data, 6), newline=False).decode("ascii")
            self.chunks.append([_len(self.pickles), blob])
            self.pickles = []
            self.size = 0


class _ChunkReader:
    def __init__(self, chunks):
        import binascii
        import zlib

        self.decompress = zlib.decompress
        self.a2b = binascii.a2b_base64
        self.chunks = chunks
        self.total = _sum(n for n, _ in chunks)
        self.next_chunk = 0
        self.start = 0
        self.values = []

    def get(self, i):
        # Sequential access: decode forward until the chunk holding input i.
        while i >= self.start + _len(self.values):
            if self.next_chunk >= _len(self.chunks):
                raise IndexError("no expected output for input " + _str(i))
            self.start += _len(self.values)
            count, blob = self.chunks[self.next_chunk]
            self.next_chunk += 1
            self.values = []
            # One unpickler per output: each was pickled on its own, memo and all.
            stream = _BytesIO(self.decompress(self.a2b(blob)))
            self.values = [_Unpickler(stream).load() for _ in _range(count)]
        return self.values[i - self.start]


def _ground_truth(job, inputs_text):
    code = job["code"]
    entry_point = job["entry_point"]
    not_none = job["dataset"] == "mbpp" and entry_point in _MBPP_NOT_NONE
    from copy import deepcopy

    parts = _json_loads(inputs_text)
    result = {}
    swallow = _Swallow()
    for part in ("base", "plus"):
        inputs = _convert_inputs(job, parts[part])
        scope = {}
        with swallow:
            _exec(code, scope)
        fn = scope[entry_point]
        writer = _ChunkWriter()
        times = []
        for args in inputs:
            args = deepcopy(args)
            with swallow:
                start = _perf_counter()
                out = fn(*args)
                times.append(_perf_counter() - start)
            if not_none:
                out = out is not None
            writer.add(_pickled(out))
            out = None
        writer.flush()
        result[part] = {"time": times, "chunks": writer.chunks}
        parts[part] = inputs = None
    data = (_MARKER + _json.dumps(result) + "\n").encode("utf-8")
    while data:
        written = _os.write(1, data)
        data = data[written:]


class _Clock:
    """Per-input limits and the whole run's deadline on one ITIMER_REAL.

    An input's limit raises TimeoutException in the candidate once (as EvalPlus). At the
    deadline (when EvalPlus kills the process) `expired` is set and TimeoutException is
    raised once more, so that the driver can say which input was running; if the
    candidate swallows that too, the process ends 0.2 s later (the sandbox then reports
    that it exited without a verdict, which is EvalPlus's `timeout` as well)."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.expired = False
        # True while the solution runs on an input. An input's limit that runs out after
        # its call returned (the timer is left running, to save a system call per input)
        # only re-arms the timer for the deadline.
        self.in_call = False

    def handler(self, signum, frame):
        if self.expired:
            _os_exit(124)
        remaining = self.deadline - _monotonic()
        if remaining <= 0.002:
            self.expired = True
            _setitimer(_ITIMER_REAL, 0.2)
        else:
            _setitimer(_ITIMER_REAL, remaining)
            if not self.in_call:
                return
        raise TimeoutException("Timed out!")

    def arm(self, limit):
        remaining = self.deadline - _monotonic()
        if remaining <= 0:
            self.expired = True
            return
        _setitimer(_ITIMER_REAL, _min(limit, remaining) if limit else remaining)

    def disarm(self):
        _setitimer(_ITIMER_REAL, 0)


def _check(job, inputs_text, expected_text):
    start = _monotonic()
    inputs = _convert_inputs(job, _json_loads(inputs_text))
    expected = _ChunkReader(_json_loads(expected_text))
    if expected.total != _len(inputs):
        raise ValueError("expected outputs do not match the inputs")
    limits = job["time_limits"]
    atol = job["atol"]
    dataset = job["dataset"]
    entry_point = job["entry_point"]
    fast_check = job.get("fast_check", True)
    clock = _Clock(start + job["deadline"])
    global _CLOCK
    _CLOCK = clock
    _signal.signal(_signal.SIGALRM, clock.handler)
    swallow = _Swallow()

    def timed_out(where):
        clock.disarm()
        raise EvalPlusVerdict("timeout " + where + ": the run went past its deadline")

    _reliability_guard()
    code = job["code"]
    job = None
    scope = {}
    clock.arm(None)
    try:
        with swallow:
            _exec(code, scope)
            fn = scope[entry_point]
    except BaseException as exc:
        if clock.expired:
            timed_out("code")
        clock.disarm()
        raise EvalPlusVerdict("fail code: " + _type(exc).__name__ + ": " + _short(exc))
    if clock.expired:
        timed_out("code")
    first_failure = None
    for i, args in _enumerate(inputs):
        why = None
        out = None
        try:
            clock.arm(limits[i])
            clock.in_call = True
            try:
                with swallow:
                    out = fn(*args)
            finally:
                clock.in_call = False
            if clock.expired:
                timed_out(_str(i))
            exp = expected.get(i)
            exact_match = out == exp
            if dataset == "mbpp":
                if entry_point == "are_equivalent":
                    exact_match = exact_match or True
                elif entry_point == "sum_div":
                    exact_match = exact_match or out == 0
                elif entry_point == "surface_Area":
                    exact_match = exact_match or _abs(out - _pyramid_surface(*args)) <= atol
                elif entry_point == "digit_distance_nums":
                    exact_match = exact_match or out == _digit_distance(*args)
                elif entry_point in _MBPP_SET_EQ:
                    exact_match = _set(out) == _set(exp)
                elif entry_point in _MBPP_NOT_NONE:
                    if _isinstance(out, _bool):
                        exact_match = out == exp
                    else:
                        exact_match = exp == (out is not None)
            if dataset == "humaneval" and entry_point == "find_zero":
                if not (_abs(_poly(*args, out)) <= atol):
                    why = "poly(xs, " + _short(out) + ") is not within atol of 0"
                    raise AssertionError(why)
                continue
            # From the first float expected output on, every later comparison of this run
            # uses atol 1e-6 when the problem has none (as upstream, where the variable
            # keeps its new value).
            if atol == 0 and is_floats(exp):
                atol = 1e-6
            if not exact_match and atol != 0:
                why = "expected " + _short(exp) + " within atol " + _repr(atol)
                why += ", got " + _short(out)
                if _type(out) != _type(exp):
                    raise AssertionError(why)
                if _isinstance(exp, (_list, _tuple)) and _len(out) != _len(exp):
                    raise AssertionError(why)
                if not allclose(out, exp, 1e-07, atol):
                    raise AssertionError(why)
            elif not exact_match:
                why = "expected " + _short(exp) + ", got " + _short(out)
                raise AssertionError(why)
        except EvalPlusVerdict:
            raise
        except BaseException as exc:
            if clock.expired:
                timed_out(_str(i))
            if why is None:
                why = _type(exc).__name__ + ": " + _short(exc)
            if fast_check:
                clock.disarm()
                raise EvalPlusVerdict("fail " + _str(i) + ": " + why)
            if first_failure is None:
                first_failure = "fail " + _str(i) + ": " + why
    clock.disarm()
    if first_failure is not None:
        raise EvalPlusVerdict(first_failure)


_CLOCK = None


def _weave_evalplus(job_text, inputs_text, expected_text):
    job = _json_loads(job_text)
    if job["mode"] == "ground_truth":
        _ground_truth(job, inputs_text)
    elif job["mode"] == "check":
        try:
            _check(job, inputs_text, expected_text)
        except EvalPlusVerdict:
            raise
        except BaseException:
            # The deadline's TimeoutException can land outside the per-input handling.
            if _CLOCK is not None and _CLOCK.expired:
                _CLOCK.disarm()
                raise EvalPlusVerdict("timeout: the run went past its deadline")
            raise
    else:
        raise ValueError("unknown mode " + _repr(job["mode"]))
