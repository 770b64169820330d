"""Fuzzing harness for the schedule parser and ``rsstab check`` (used by tests/schedule/test_fuzz.py and
benchmarks/fuzz_parser.py).

Inputs come from four hypothesis strategies: random token strings, arbitrary unicode text, random
Python expression ASTs (unparsed), and random *valid* schedule expressions (which reach the
asymptotic classifier). :func:`run_one` feeds one input to :func:`rsstab.schedule.parse` and to
``rsstab check`` while :func:`no_evaluation` makes every way of evaluating text fail loudly, and
returns what happened; anything other than "accepted" or a clean :class:`ScheduleError` /
exit code 0, 1, 2 without a traceback is reported as a crash.
"""

from __future__ import annotations

import _thread
import ast
import builtins
import contextlib
import io
import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

from hypothesis import strategies as st

from rsstab import asymptotics
from rsstab.cli import main
from rsstab.errors import ScheduleError
from rsstab.schedule import FUNCTIONS, parse

#: Seconds one input may take: ``parse`` alone, and ``rsstab check`` (two optimizer regimes, each
#: with the classifier's own symbolic time limit, plus the numeric fallback and the table).
PARSE_LIMIT = asymptotics.TIME_LIMIT
CHECK_LIMIT = 2 * asymptotics.TIME_LIMIT + 4.0
#: After this many seconds an input counts as hung and is interrupted (KeyboardInterrupt).
HANG_LIMIT = 3 * CHECK_LIMIT

NAMES = ("r", "alpha", "lora_alpha", "x", "pi", "e", "inf", "nan", "oo", "zoo", "I", "j", "E",
         "None", "True", "os", "sys", "self", "R", "S", "Symbol", "sympify", "eval", "exec",
         "open", "getattr", "compile", "globals", "vars", "breakpoint", "input", "print", "help")
DUNDERS = ("__import__", "__class__", "__builtins__", "__subclasses__", "__globals__",
           "__dict__", "__mro__", "__getattribute__", "__reduce__", "_", "__")
FUNCS = tuple(FUNCTIONS) + ("pow", "round", "int", "float", "complex", "Integer", "Rational",
                            "lambdify", "system", "gamma", "factorial", "Sum", "Integral")
TOKENS = (
    tuple("0123456789")
    + ("0.5", "1.5", ".5", "5.", "1e3", "1e-3", "1e308", "1e309", "2e-324", "0x1f", "0b11", "0o7",
       "1_000", "1j", "99999999999999999999999999999999999999999999999999999999999999999")
    + NAMES + DUNDERS + FUNCS
    + ("+", "-", "*", "/", "**", "^", "%", "//", "@", "&", "|", "~", "<<", ">>", "<", ">", "==",
       "!=", "<=", ">=", "=", ":=", ".", ",", ":", ";", "(", ")", "[", "]", "{", "}", "(", ")",
       "'", '"', "`", '"""', "f'", "b'", "\\", "#", "!", "$", "?", "...", "*args", "**kw")
    + ("lambda", "lambda:", "if", "else", "for", "in", "not", "and", "or", "is", "yield", "await",
       "import", "from", "del", "pass", "return", "async", "match", "case")
    + (" ", "  ", "\t", "\n", "\r", "\x00", "\x0b", "γ", "√", "²", "½", "１", "ｒ", "∞", "−", "·")
)

_INT = st.integers(-(10**4), 10**4) | st.integers() | st.sampled_from([0, 1, 2, 10**70, -(10**70)])
_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.5, 1e-300, 1e300])
_CONSTANT = st.one_of(
    _INT, _FLOAT, st.complex_numbers(max_magnitude=1e6), st.text(max_size=4), st.binary(max_size=4),
    st.sampled_from([None, True, False, Ellipsis]),
)
_NAME = st.sampled_from(NAMES + DUNDERS + FUNCS)
_BINOPS = [ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod, ast.FloorDiv, ast.MatMult,
           ast.BitXor, ast.BitAnd, ast.BitOr, ast.LShift, ast.RShift]
_UNARY = [ast.USub, ast.UAdd, ast.Not, ast.Invert]
_CMPOPS = [ast.Lt, ast.Gt, ast.Eq, ast.NotEq, ast.LtE, ast.GtE, ast.Is, ast.In]


def _leaf() -> st.SearchStrategy[ast.expr]:
    return st.one_of(
        _CONSTANT.map(lambda v: ast.Constant(value=v)),
        _NAME.map(lambda n: ast.Name(id=n, ctx=ast.Load())),
    )


def _extend(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    load = ast.Load()
    name = _NAME.map(lambda n: ast.Name(id=n, ctx=load))
    args = st.lists(children, max_size=4)
    call_args = st.lists(children | children.map(lambda c: ast.Starred(value=c, ctx=load)), max_size=3)
    return st.one_of(
        st.builds(lambda op, a, b: ast.BinOp(left=a, op=op(), right=b),
                  st.sampled_from(_BINOPS), children, children),
        st.builds(lambda op, a: ast.UnaryOp(op=op(), operand=a), st.sampled_from(_UNARY), children),
        st.builds(lambda f, a, kw: ast.Call(func=f, args=a, keywords=kw),
                  name | children, call_args,
                  st.lists(st.builds(lambda k, v: ast.keyword(arg=k, value=v),
                                     st.sampled_from(["x", "base", "__class__"]), children),
                           max_size=1)),
        st.builds(lambda v, a: ast.Attribute(value=v, attr=a, ctx=load), children,
                  st.sampled_from(["real", "func", "args", "__class__", "__globals__", "evalf"])),
        st.builds(lambda v, i: ast.Subscript(value=v, slice=i, ctx=load), children, children),
        st.builds(lambda a, ops, cs: ast.Compare(left=a, ops=[o() for o in ops], comparators=cs[: len(ops)] or [a]),
                  children, st.lists(st.sampled_from(_CMPOPS), min_size=1, max_size=2),
                  st.lists(children, min_size=2, max_size=2)),
        st.builds(lambda op, vs: ast.BoolOp(op=op(), values=vs), st.sampled_from([ast.And, ast.Or]),
                  st.lists(children, min_size=2, max_size=3)),
        st.builds(lambda t, a, b: ast.IfExp(test=t, body=a, orelse=b), children, children, children),
        st.builds(lambda body: ast.Lambda(args=ast.arguments(posonlyargs=[], args=[ast.arg(arg="r")],
                                                             kwonlyargs=[], kw_defaults=[], defaults=[]),
                                          body=body), children),
        st.builds(lambda t, v: ast.NamedExpr(target=ast.Name(id=t, ctx=ast.Store()), value=v),
                  st.sampled_from(["r", "alpha", "x"]), children),
        args.map(lambda e: ast.Tuple(elts=e, ctx=load)),
        args.map(lambda e: ast.List(elts=e, ctx=load)),
        st.lists(children, min_size=1, max_size=3).map(lambda e: ast.Set(elts=e)),
        st.lists(st.tuples(children, children), max_size=2).map(
            lambda kv: ast.Dict(keys=[k for k, _ in kv], values=[v for _, v in kv])),
        st.builds(lambda e, it: ast.GeneratorExp(
            elt=e, generators=[ast.comprehension(target=ast.Name(id="r", ctx=ast.Store()), iter=it,
                                                 ifs=[], is_async=0)]), children, children),
        st.builds(lambda v: ast.JoinedStr(values=[ast.FormattedValue(value=v, conversion=-1)]), children),
    )


def _unparse(node: ast.expr) -> str | None:
    try:
        return ast.unparse(ast.fix_missing_locations(ast.Expression(body=node)))
    except (ValueError, RecursionError):  # e.g. f-strings whose parts need a backslash
        return None


#: Random Python expression ASTs, unparsed to text (sometimes with ``**`` written as ``^``).
ast_texts: st.SearchStrategy[str] = st.builds(
    lambda text, caret: text.replace("**", "^") if caret else text,
    st.recursive(_leaf(), _extend, max_leaves=12).map(_unparse).filter(lambda t: t is not None),
    st.booleans(),
)

#: Random token strings from an alphabet of digits, names, operators, brackets, quotes, keywords.
token_texts: st.SearchStrategy[str] = st.builds(
    lambda tokens, sep: sep.join(tokens), st.lists(st.sampled_from(TOKENS), max_size=24),
    st.sampled_from(["", " "]),
)

#: Arbitrary unicode text (short) and long runs of one character (size/nesting limits).
raw_texts: st.SearchStrategy[str] = st.text(max_size=40) | st.builds(
    lambda ch, n: ch * n, st.sampled_from(list("(-+~r1*[") + ["r*", "-(", "2**", "sqrt(", "r+"]),
    st.integers(0, 1200),
)

_SAFE_FUNCS = sorted(FUNCTIONS)
_valid_leaf = st.one_of(
    st.just("r"), st.just("r"), st.sampled_from(["alpha", "lora_alpha", "pi", "e"]),
    st.integers(1, 64).map(str), st.sampled_from(["0.5", "1.5", "1e-3", "1/2", "(-1)", "0"]),
    st.sampled_from(["1/sqrt(r)", "alpha/r^0.5", "r**-0.5", "1/r", "log(r)", "16/r"]),
)


def _call(name: str, args: list[str]) -> str:
    counts = FUNCTIONS[name][1]
    n = min(max(len(args), counts[0]), counts[-1])
    return f"{name}({', '.join((args * n)[:n])})"


def _valid_extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, op, b: f"({a}){op}({b})", children,
                  st.sampled_from(["+", "-", "*", "/", "**", "^"]), children),
        st.builds(lambda a: f"-({a})", children),
        st.builds(_call, st.sampled_from(_SAFE_FUNCS), st.lists(children, min_size=1, max_size=3)),
    )


#: Random expressions of the schedule grammar itself (most are accepted by ``parse``).
valid_texts: st.SearchStrategy[str] = st.recursive(_valid_leaf, _valid_extend, max_leaves=6)

#: Optional extra ``rsstab check`` arguments.
check_flags: st.SearchStrategy[list[str]] = st.lists(
    st.sampled_from([["--json"], ["--optimizer", "adam"], ["--set", "alpha=16"],
                     ["--set", "alpha=-1"], ["--set", "alpha=nan"], ["--set", "x=1e309"],
                     ["--set", "lora_alpha=0.5"]]),
    max_size=2,
).map(lambda parts: [a for p in parts for a in p])

#: Everything, mixed.
any_text: st.SearchStrategy[str] = st.one_of(token_texts, ast_texts, raw_texts, valid_texts)


class Evaluated(BaseException):
    """Raised when fuzzed input reaches an evaluator (BaseException: no ``except Exception``
    in the code under test can swallow it)."""


#: Modules that legitimately exec code *they generate themselves* (sympy builds its monomial
#: arithmetic with ``exec``, the import system executes module code). Their calls are allowed
#: unless the code contains the fuzzed text; sympy's string parser is refused regardless.
INTERNAL_EVALUATORS = ("sympy.", "mpmath.", "importlib.", "_frozen_importlib", "dataclasses",
                       "collections", "typing", "enum", "functools")


def _caller_module(depth: int = 2) -> str:
    return str(sys._getframe(depth).f_globals.get("__name__", ""))


@contextlib.contextmanager
def no_evaluation(violations: list[str], text: str | None = None) -> Iterator[None]:
    """Make every way of evaluating ``text`` fail loudly; each attempt goes into ``violations``.

    Refused: ``eval``/``exec``/``compile`` called from anywhere but :data:`INTERNAL_EVALUATORS`
    (and from those too when the code contains ``text``), except ``compile(..., PyCF_ONLY_AST)``
    which is what ``ast.parse`` does; sympy's string parser (``sympify(str)``/``parse_expr``)
    when called from outside sympy or on ``text``; ``os.system``, ``os.popen`` and
    ``subprocess.Popen``. Violations raise :class:`Evaluated`.
    """
    import sympy
    import sympy.parsing
    from sympy.parsing import sympy_parser

    real = {"eval": builtins.eval, "exec": builtins.exec, "compile": builtins.compile}
    needle = (text or "").strip()

    def refuse(what: str):  # type: ignore[no-untyped-def]
        def fail(*args: object, **kwargs: object) -> None:
            violations.append(f"{what} from {_caller_module()}: {args[:1]!r:.80}")
            raise Evaluated(what)

        return fail

    def guarded(what: str):  # type: ignore[no-untyped-def]
        def call(source, *args, **kwargs):  # type: ignore[no-untyped-def]
            flags = args[2] if len(args) > 2 else kwargs.get("flags", 0)
            if what == "compile" and flags & ast.PyCF_ONLY_AST:  # ast.parse: builds a tree only
                return real[what](source, *args, **kwargs)
            caller = _caller_module()
            code = source if isinstance(source, str) else ""
            own_code = len(needle) < 2 or needle not in code
            if caller.startswith(INTERNAL_EVALUATORS) and own_code:
                return real[what](source, *args, **kwargs)
            violations.append(f"{what} from {caller}: {source!r:.80}")
            raise Evaluated(what)

        return call

    real_parse_expr = sympy_parser.parse_expr

    def guarded_parse_expr(source, *args, **kwargs):  # type: ignore[no-untyped-def]
        # Find where the call entered sympy: a direct sympify(str)/parse_expr call from outside
        # sympy parses someone's text; a string sympy passes to itself (e.g. unit names while
        # importing sympy.physics) is sympy's own. The fuzzed text itself is always refused.
        frame, entry = sys._getframe(1), None
        while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("sympy"):
            entry, frame = frame, frame.f_back
        direct = entry is None or entry.f_code.co_name in ("sympify", "parse_expr", "S")
        if direct or (len(needle) >= 2 and needle in str(source)):
            caller = frame.f_globals.get("__name__", "") if frame is not None else ""
            violations.append(f"sympy.parse_expr from {caller}: {source!r:.80}")
            raise Evaluated("sympy.parse_expr")
        return real_parse_expr(source, *args, **kwargs)

    patches = [
        (builtins, "eval", guarded("eval")),
        (builtins, "exec", guarded("exec")),
        (builtins, "compile", guarded("compile")),
        (sympy_parser, "parse_expr", guarded_parse_expr),
        (sympy, "parse_expr", guarded_parse_expr),
        (sympy.parsing, "parse_expr", guarded_parse_expr),
        (os, "system", refuse("os.system")),
        (os, "popen", refuse("os.popen")),
        (subprocess, "Popen", refuse("subprocess.Popen")),
    ]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


@dataclass
class Outcome:
    """What one input did."""

    text: str
    accepted: bool
    check_code: int
    parse_seconds: float
    check_seconds: float
    problems: list[str] = field(default_factory=list)
    #: warnings raised while handling it (e.g. SyntaxWarning from ``ast.parse``): not a crash,
    #: but noise a user would see on stderr.
    warnings: list[str] = field(default_factory=list)


def run_one(text: str, flags: list[str] | None = None) -> Outcome:
    """Parse ``text`` and run ``rsstab check -- text [flags]`` under :func:`no_evaluation`.

    ``problems`` is empty when the input was handled cleanly: ``parse`` returned or raised
    :class:`ScheduleError`; ``check`` returned 0/1/2 without a traceback (2 with
    ``rsstab: error:`` when ``parse`` rejected the text); nothing was evaluated; both finished
    within :data:`PARSE_LIMIT` / :data:`CHECK_LIMIT`.
    """
    problems: list[str] = []
    violations: list[str] = []
    hung: list[float] = []

    def hang() -> None:  # a hang is reported, then broken with a KeyboardInterrupt
        hung.append(HANG_LIMIT)
        _thread.interrupt_main()

    # interrupt_main() does nothing while SIGINT is ignored (as in a job a shell starts in the
    # background): make sure Python's own handler is there for the watchdog, then restore.
    sigint = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if sigint in (signal.SIG_IGN, signal.SIG_DFL):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    watchdog = threading.Timer(HANG_LIMIT, hang)
    watchdog.daemon = True
    watchdog.start()
    try:
        outcome = _run_one(text, flags, problems, violations)
    except KeyboardInterrupt:
        if not hung:
            raise
        outcome = Outcome(text, False, -1, math.nan, math.nan, problems)
    finally:
        watchdog.cancel()
        if sigint in (signal.SIG_IGN, signal.SIG_DFL):
            signal.signal(signal.SIGINT, sigint)
    if hung:
        outcome.problems.append(f"hang: still running after {HANG_LIMIT} s, interrupted")
    return outcome


def _run_one(text: str, flags: list[str] | None, problems: list[str],
             violations: list[str]) -> Outcome:
    accepted = False
    with no_evaluation(violations, text), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            parse(text)
            accepted = True
        except ScheduleError as exc:
            if "\n" in str(exc):
                problems.append(f"multi-line ScheduleError: {exc!r}")
        except BaseException as exc:  # noqa: BLE001 - that is the finding
            problems.append(f"parse raised {type(exc).__name__}: {exc!r:.200}")
        parse_seconds = time.perf_counter() - start

        out, err = io.StringIO(), io.StringIO()
        argv = ["check", *(flags or []), "--", text]
        code = -1
        stdin = sys.stdin
        start = time.perf_counter()
        try:
            sys.stdin = io.StringIO("1/sqrt(r)")
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        except SystemExit as exc:  # argparse usage errors exit 2
            code = exc.code if isinstance(exc.code, int) else -2
        except BaseException as exc:  # noqa: BLE001 - that is the finding
            problems.append(f"check raised {type(exc).__name__}: {exc!r:.200}")
        finally:
            sys.stdin = stdin
        check_seconds = time.perf_counter() - start
    printed = out.getvalue() + err.getvalue()
    if code not in (0, 1, 2):
        problems.append(f"check exit code {code!r}")
    if "Traceback" in printed:
        problems.append("check printed a traceback")
    if not accepted and text != "-" and code != 2:  # exactly "-" reads stdin
        problems.append(f"parse rejected it but check exited {code}")
    if code == 2 and "rsstab: error: " not in err.getvalue() and "usage:" not in err.getvalue():
        problems.append(f"exit 2 without an error message: {err.getvalue()!r:.200}")
    if violations:
        problems.append("evaluated: " + "; ".join(violations))
    if parse_seconds > PARSE_LIMIT:
        problems.append(f"parse took {parse_seconds:.2f} s (limit {PARSE_LIMIT} s)")
    if check_seconds > CHECK_LIMIT:
        problems.append(f"check took {check_seconds:.2f} s (limit {CHECK_LIMIT} s)")
    noise = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return Outcome(text, accepted, code, parse_seconds, check_seconds, problems, noise)


def warm_up() -> None:
    """Import and initialize everything ``check`` touches, outside the evaluation guard
    (dataclass and namedtuple creation at import time legitimately use ``exec``)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for text in ("alpha/sqrt(r)", "log(r)*sin(r)/r", "max(1/r, exp(-r))", "(("):
            for flags in ([], ["--json", "--optimizer", "adam", "--set", "alpha=2"]):
                main(["check", *flags, "--", text])
