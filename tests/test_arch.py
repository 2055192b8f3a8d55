"""Architecture strings: grammar, error messages with carets, safety (nothing is ever executed)."""

import ast
import builtins
import contextlib
import dataclasses
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infntk import arch as A
from infntk.arch import ArchSyntaxError, Compose, LayerCall, build, parse, to_string, with_width
from infntk.errors import InfntkError

EXAMPLES = [
    "Dense(512, W_std=1.5) >> Relu() >> Dense(1)",
    "Conv(64, (3, 3), padding='SAME') >> (Relu() + Identity()) >> GlobalAvgPool() >> Dense(1)",
    "(Dense(64) >> Erf()) | (Dense(64) >> Relu())",
    "Dense(8, W_std=-1.5e-3, b_std=None, parameterization=\"standard\") >> LeakyRelu(-0.1)",
    "Polynomial([1, -2.0, +3]) >> Hermite(3) >> Monomial(2) >> RectifiedMonomial(1)",
]


def caret_column(msg: str) -> int:
    """Column of the first caret relative to the excerpt line above it."""
    lines = msg.splitlines()
    return lines[-1].index("^") - 2, lines[-2][2:]


# ---------------------------------------------------------------------------------- grammar


def test_serial_chain_is_left_associative():
    d = parse("Dense(512, W_std=1.5) >> Relu() >> Dense(1)")
    assert d == Compose(">>", Compose(">>", LayerCall("Dense", (512,), (("W_std", 1.5),), 0, 21, (11,)),
                                      LayerCall("Relu", (), (), 25, 31)),
                        LayerCall("Dense", (1,), (), 35, 43), 0)


def test_python_precedence_plus_binds_tighter_than_rshift():
    d = parse("Dense(1) >> Relu() + Identity() >> Dense(2)")
    assert d.op == ">>" and d.left.op == ">>" and d.left.right.op == "+"
    d = parse("Dense(1) | Relu() >> Erf()")  # | binds loosest
    assert d.op == "|" and d.right.op == ">>"


@pytest.mark.parametrize("text", EXAMPLES)
def test_round_trip(text):
    d = parse(text)
    again = parse(to_string(d))

    def strip(x):  # positions differ; the structure and the values must not
        if isinstance(x, LayerCall):
            return (x.name, x.args, x.kwargs)
        return (x.op, strip(x.left), strip(x.right))

    assert strip(again) == strip(d)
    assert to_string(again) == to_string(d)


def test_literals():
    d = parse("Polynomial([1, -2.0, +3, (None, True, 'a')], x=-7)")
    assert d.args == ((1, -2.0, 3, (None, True, "a")),)
    assert d.kwargs == (("x", -7),)


def test_multiline_and_leading_space():
    d = parse("  Dense(5) >>\n\tRelu()")
    assert d.right.name == "Relu" and d.right.col == 15


def test_with_width_keeps_readout():
    d = with_width(parse("Dense(512, W_std=1.5) >> (Conv(3, (2, 2)) + Identity()) >> Relu() >> Dense(10)"), 64)
    assert to_string(d) == "Dense(64, W_std=1.5) >> (Conv(64, (2, 2)) + Identity()) >> Relu() >> Dense(10)"
    with pytest.raises(ArchSyntaxError):
        with_width(d, 0)


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text, col, needle", [
    ("Dense(512) >> Relux()", 14, "did you mean 'Relu'"),
    ("Dense(512) >> relu()", 14, "did you mean 'Relu'"),
    ("Dense(1) >> GlobalAvgPooling()", 12, "did you mean 'GlobalAvgPool'"),
    ("Dense(1) >> nk.Relu()", 12, "attribute access"),
    ("Dense(1) * Relu()", 0, "only '>>'"),
    ("Dense(1) >> Relu(", 16, "never closed"),
    ("Dense(1) >> >> Relu()", 12, "invalid syntax"),
    ("Dense(1e999)", 6, "finite"),
    ("Dense(x)", 6, "not a literal"),
    ("Dense(1) >> Relu", 12, "must be called"),
    ("Dense(**{'a': 1})", 6, "unpacking"),
    ("Dense(f'{1}')", 6, "f-strings"),
    ("Dense(1)[0]", 0, "subscripts"),
    ("Dense(1.)(3)", 0, "only a layer name may be called"),
    ("Dense(1j)", 6, "not complex"),
    ("Dense(ñ) >> Relu()", 6, "not a literal"),  # non-ASCII: caret counts characters
    ("Dense('é', x=1) >> Relu(y)", 24, "Relu: name 'y'"),
])
def test_errors_show_caret(text, col, needle):
    with pytest.raises(ArchSyntaxError) as e:
        parse(text)
    msg = str(e.value)
    assert needle in msg, msg
    c, shown = caret_column(msg)
    assert shown == text and c == col, msg
    assert e.value.offset == col
    assert isinstance(e.value, InfntkError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("text", ["", "   ", "x" * (A.MAX_LENGTH + 1), "(" * 100 + "Relu()" + ")" * 100,
                                  "Dense(" + "(" * 60 + "1" + ")" * 60 + ")", "Dense(1)\x00", 3])
def test_bounds(text):
    with pytest.raises(ArchSyntaxError):
        parse(text)


def test_long_chains_are_one_level_nesting_is_bounded():
    # a chain is one level however long: the README's 20 x [Conv, Relu] + GAP + Dense, and 500 layers
    readme = " >> ".join(["Conv(8, (3, 3), padding='SAME') >> Relu()"] * 20
                         + ["GlobalAvgPool()", "Dense(1)"])
    assert len(A.parse_model(readme).series) == 42
    long = " >> ".join(["Dense(4)", "Relu()"] * 250)
    model = A.parse_model(long)
    assert len(model.series) == 500 and to_string(parse(long)) == long
    assert len(list(A.iter_calls(parse(long)))) == 500
    assert A.with_width(parse(long), 7).left.left.left.right.args == (7,)
    # serial(...) is the same chain
    assert A.parse_model("serial(" + long.replace(" >> ", ", ") + ")") == model
    assert A.parse_model("serial(Dense(3), Relu() + Identity(), Dense(1))") == \
        A.parse_model("Dense(3) >> (Relu() + Identity()) >> Dense(1)")
    for bad, msg in (("serial()", "at least one layer"), ("serial(Dense(1), x=1)", "no keywords"),
                     ("serial(*a)", "unpacking"), ("serial(1)", "literal")):
        with pytest.raises(ArchSyntaxError, match=msg):
            parse(bad)
    # nesting still counts: 41 levels of brackets around sums are refused, as before
    nested = "Relu()"
    for _ in range(A.MAX_DEPTH + 1):
        nested = f"Relu() + ({nested} >> Relu())"
    with pytest.raises(ArchSyntaxError, match="nested"):
        parse(nested)


# ---------------------------------------------------------------------------------- build

@dataclasses.dataclass(frozen=True)
class FakeDense:
    out_dim: int
    W_std: float = 1.0
    b_std: float = 0.0

    def __rshift__(self, other):
        return ("serial", self, other)


@dataclasses.dataclass(frozen=True)
class FakeRelu:
    def __rshift__(self, other):
        return ("serial", self, other)

    def __add__(self, other):
        return ("sum", self, other)


def fake(name):
    return {"Dense": FakeDense, "Relu": FakeRelu}.get(name) or pytest.fail(f"unexpected {name}")


def test_build_composes():
    text = "Dense(3, W_std=2.0) >> (Relu() + Relu())"
    m = build(parse(text), text, resolve=fake)
    assert m == ("serial", FakeDense(3, 2.0), ("sum", FakeRelu(), FakeRelu()))


@pytest.mark.parametrize("text, col, needle", [
    ("Relu() >> Dense(3, W_sdt=2.0)", 19, "no argument 'W_sdt' (did you mean 'W_std'?)"),
    ("Relu() >> Dense()", 10, "missing a required argument: 'out_dim'"),
    ("Relu() >> Dense(1, 2, 3, 4)", 10, "too many positional arguments"),
    ("Relu() >> Dense(1, 2, W_std=3)", 10, "multiple values for argument 'W_std'"),
    ("Relu(1) >> Dense(1)", 0, "too many positional arguments"),
])
def test_build_checks_signature(text, col, needle):
    with pytest.raises(ArchSyntaxError) as e:
        build(parse(text), text, resolve=fake)
    msg = str(e.value)
    assert needle in msg and ("Dense" in msg or "Relu" in msg), msg
    assert caret_column(msg)[0] == col, msg


def test_build_wraps_constructor_errors():
    def bad(name):
        def ctor(*a, **k):
            raise TypeError("width must be an int")
        return ctor

    with pytest.raises(ArchSyntaxError, match="Dense: TypeError: width must be an int"):
        build(parse("Dense('a')"), "Dense('a')", resolve=bad)


# ---------------------------------------------------------------------------------- safety

@contextlib.contextmanager
def no_code_execution():
    """Trap the routes to code execution while parsing; any use is recorded and fails the test.

    ``compile`` is allowed only with ``ast.PyCF_ONLY_AST`` (that is how ``ast.parse`` works): it
    builds a tree and never code.
    """
    calls = []
    real_compile, real_import = builtins.compile, builtins.__import__

    def trap(name):
        def f(*a, **k):
            calls.append(name)
            raise AssertionError(f"{name} called")
        return f

    def only_ast(source, filename, mode, flags=0, *a, **k):
        if not flags & ast.PyCF_ONLY_AST:
            calls.append("compile to code")
            raise AssertionError("compile to code")
        return real_compile(source, filename, mode, flags, *a, **k)

    def watched_import(name, *a, **k):
        if name.split(".")[0] in ("os", "subprocess", "shutil", "posix"):
            calls.append(f"import {name}")
        return real_import(name, *a, **k)

    saved = {n: getattr(builtins, n) for n in ("eval", "exec", "compile", "__import__")}
    builtins.eval, builtins.exec = trap("eval"), trap("exec")
    builtins.compile, builtins.__import__ = only_ast, watched_import
    try:
        yield calls
    finally:
        for n, f in saved.items():
            setattr(builtins, n, f)


MALICIOUS = [
    "__import__('os').system('touch /tmp/infntk_pwned')",
    "Dense(__import__('os').system('touch /tmp/infntk_pwned'))",
    "Dense(1).__class__.__mro__[1].__subclasses__()",
    "Dense(1) >> Relu().__init__.__globals__['os'].system('x')",
    "().__class__.__bases__[0].__subclasses__()",
    "Dense(f\"{__import__('os').system('touch /tmp/infntk_pwned')}\")",
    "Dense(1) >> (lambda: __import__('os'))()",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "Dense(*[1]) >> Relu()",
    "Dense(eval('1'))",
    "exec('x=1')",
    "open('/etc/passwd')",
    "globals()",
    "Dense(1) if True else Relu()",
    "(x := Dense(1))",
    "Dense(1, W_std=__builtins__)",
    "Dense(1) >> __builtins__.__dict__['eval']('1')",
    "Dense(1) >> Relu() ; import os",
    "Dense(1)\nimport os",
    "Dense(1) >> getattr(Relu(), '__class__')()",
    "Dense(b'\\x00')",
    "Dense(...)",
    "Dense({1: 2})",
    "Dense({1})",
    "Dense(not 1)",
    "Dense(~1)",
    "Dense(--1)",
    "Dense(1 + 2)",
    "Dense(10 ** 10 ** 10)",
    "Dense(9" + "9" * 5000 + ")",
]


@pytest.mark.parametrize("text", MALICIOUS)
def test_code_is_never_executed(text, tmp_path):
    marker = tmp_path / "pwned"
    text = text.replace("/tmp/infntk_pwned", str(marker))
    with no_code_execution() as calls:
        with pytest.raises(ArchSyntaxError) as e:
            parse(text)
    assert calls == []
    assert not marker.exists()
    assert str(e.value).startswith("bad architecture: ")


def test_the_trap_works():
    with no_code_execution() as calls:
        with pytest.raises(AssertionError):
            eval("1")
    assert calls == ["eval"]


def test_dunder_keyword_rejected():
    with pytest.raises(ArchSyntaxError, match="not allowed"):
        parse("Dense(1, __class__=2)")


# ---------------------------------------------------------------------------------- fuzzing

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=string.printable + "ñé€", max_size=80))
def test_fuzz_random_text(text):
    try:
        parse(text)
    except ArchSyntaxError:
        pass


TOKENS = ["Dense", "Relu", "Erf", "Conv", "(", ")", "[", "]", ",", ">>", "+", "|", "*", "-", ".", "=",
          "1", "2.5", "'SAME'", "None", "True", "W_std", "__import__", "os", "lambda", ":", " ",
          "__class__", "f'", "{", "}", "**", "\n"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=25))
def test_fuzz_token_soup(tokens):
    try:
        d = parse("".join(tokens))
    except ArchSyntaxError:
        return
    assert all(c.name in A.LAYERS for c in A.iter_calls(d))


literals = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6)


@st.composite
def calls(draw):
    name = draw(st.sampled_from(A.LAYERS))
    args = tuple(draw(st.lists(literals, max_size=3)))
    keys = draw(st.lists(st.sampled_from(["W_std", "b_std", "padding", "a", "degree"]),
                         max_size=3, unique=True))
    return LayerCall(name, args, tuple((k, draw(literals)) for k in keys))


descs = st.recursive(calls(), lambda inner: st.builds(Compose, st.sampled_from([">>", "+", "|"]),
                                                     inner, inner), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(descs)
def test_fuzz_random_trees_round_trip(d):
    text = to_string(d)
    back = parse(text)
    assert to_string(back) == text


@settings(max_examples=200, deadline=None)
@given(descs, st.integers(0, 200), st.sampled_from(["", ".x", "[0]", "(", ")", "__import__", "lambda:",
                                                     "**", "*", "=", "'", "f'", ",", " if 1 else "]))
def test_fuzz_mutated_trees(d, pos, junk):
    text = to_string(d)
    pos = min(pos, len(text))
    try:
        parse(text[:pos] + junk + text[pos:])
    except ArchSyntaxError as e:
        assert "bad architecture" in str(e)


def test_whitelist_is_the_public_layer_set():
    import infntk
    from infntk.layers import registry
    assert A.LAYERS == registry.names("arch")
    assert all(A._resolve(n) is getattr(infntk, n) for n in A.LAYERS)
    # the other public names (bases, composites, stax plumbing, Activation) are not layer calls
    others = sorted(set(infntk.layers.__all__) - set(A.LAYERS))
    assert {"Layer", "Activation", "Serial", "FanOut", "serial"} <= set(others)
    for name in set(others) - {"serial"}:    # serial(...) is the chain a >> b >> ... (grammar)
        with pytest.raises(ArchSyntaxError, match=f"unknown layer '{name}'"):
            parse(f"Dense(2) >> {name}()")


def test_width_layers_are_the_layers_with_weights():
    assert A.WIDTH_LAYERS == ("Dense", "Conv")
    d = parse("Dense(out_dim=8) >> Relu() >> Conv(out_chan=4, filter_shape=(2,)) >> Dense(1)")
    assert to_string(with_width(d, 3)) == ("Dense(out_dim=3) >> Relu() >> "
                                           "Conv(out_chan=3, filter_shape=(2,)) >> Dense(1)")


@settings(max_examples=150, deadline=None)
@given(descs)
def test_fuzz_build_with_real_layers(d):
    """Random arguments to the real layers: a model or an ArchSyntaxError, nothing else."""
    text = to_string(d)
    try:
        model = A.parse_model(text)
    except ArchSyntaxError as e:
        assert str(e).startswith("bad architecture: ")
        return
    assert hasattr(model, "kernel")


def test_parse_model_real_layers():
    import infntk as nk
    m = A.parse_model("Dense(8, W_std=1.5) >> Relu() >> Dense(1)")
    assert m == nk.Dense(8, W_std=1.5) >> nk.Relu() >> nk.Dense(1)
    m = A.parse_model("Dense(512) >> Relu() >> Dense(1)", width=16)
    assert m == nk.Dense(16) >> nk.Relu() >> nk.Dense(1)
    with pytest.raises(ArchSyntaxError, match=r"Dense.*out_dim") as e:
        A.parse_model("Dense(0) >> Relu()")
    assert caret_column(str(e.value))[0] == 0
