"""Architecture strings: a safe, whitelisted parser for the layer algebra.

An *architecture string* is the Python spelling of an infntk model::

    "Dense(512, W_std=1.5) >> Relu() >> Dense(1)"
    "Conv(64, (3, 3), padding='SAME') >> (Relu() + Identity()) >> GlobalAvgPool() >> Dense(1)"
    "(Dense(64) >> Erf()) | (Dense(64) >> Relu())"

``>>`` composes in series, ``+`` sums branches fed the same input, ``|`` concatenates branches.

The string is parsed with :func:`ast.parse` (``mode='eval'``) and the tree is checked against a
whitelist; nothing is ever evaluated, executed or compiled to code. The accepted grammar is::

    expr    := expr ('>>' | '+' | '|') expr | '(' expr ')' | call | 'serial(' expr {',' expr} ')'
    call    := LAYER '(' [literal {',' literal}] [NAME '=' literal {',' NAME '=' literal}] ')'
    literal := number | '-' number | '+' number | string | None | True | False
             | '(' literal, ... ')' | '[' literal, ... ']'

where ``LAYER`` is one of :data:`LAYERS`. Anything else -- attribute access, subscripts, other names,
f-strings, lambdas, comprehensions, ``**`` unpacking, ... -- raises :class:`ArchSyntaxError`, whose
message shows the string with carets under the offending part and, for unknown names, the nearest
layer name.

Parsing gives a neutral description (:class:`LayerCall`, :class:`Compose`); :func:`build` turns it
into infntk layers (checking each call's arguments against the layer's signature first), and
:func:`parse_model` does both.

Example:
    >>> d = parse("Dense(512, W_std=1.5) >> Relu() >> Dense(1)")
    >>> d.op, d.left.right.name
    ('>>', 'Relu')
    >>> to_string(with_width(d, 64))
    'Dense(64, W_std=1.5) >> Relu() >> Dense(1)'
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Union

from infntk.errors import InfntkError
from infntk.layers import registry as _registry

__all__ = [
    "LAYERS",
    "MAX_LENGTH",
    "MAX_DEPTH",
    "ArchSyntaxError",
    "LayerCall",
    "Compose",
    "parse",
    "build",
    "parse_model",
    "to_string",
    "iter_calls",
    "with_width",
]

#: The public layer set of infntk that architecture strings may name, derived from the package's
#: exports (:func:`infntk.layers.registry.names`): a new layer is accepted once it is exported.
LAYERS: tuple[str, ...] = _registry.names("arch")

#: Longest accepted architecture string (characters): room for chains of several hundred layers.
MAX_LENGTH = 100_000
#: Deepest accepted nesting of brackets / operators / literal containers. A chain ``a >> b >> c``
#: (or ``serial(a, b, c)``) is one level however long; only nesting counts.
MAX_DEPTH = 40

#: Layers whose first positional argument is a width (output features / channels): those that hold
#: weights (:func:`infntk.layers.registry.width_argument`).
WIDTH_LAYERS: tuple[str, ...] = tuple(n for n in LAYERS if _registry.width_argument(n))

_OPS = {ast.RShift: ">>", ast.Add: "+", ast.BitOr: "|"}
_WORDS = {
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Lambda: "lambdas",
    ast.JoinedStr: "f-strings", ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions", ast.IfExp: "conditionals",
    ast.NamedExpr: "assignments", ast.Compare: "comparisons", ast.BoolOp: "boolean operators",
    ast.Await: "await", ast.Starred: "* unpacking", ast.Dict: "dicts", ast.Set: "sets",
}


class ArchSyntaxError(InfntkError):
    """A bad architecture string; the message shows where, with carets.

    Attributes: ``source`` (the string), ``offset`` (0-based character offset of the problem, or
    None), ``length`` (characters underlined), ``reason`` (the message without the excerpt).
    """

    def __init__(self, reason: str, source: str = "", offset: int | None = None, length: int = 1):
        self.reason = reason
        self.source = source
        self.offset = offset
        self.length = max(1, length)
        super().__init__(self._render())

    def _render(self) -> str:
        if self.offset is None or not isinstance(self.source, str) or not self.source:
            return f"bad architecture: {self.reason}"
        src = self.source
        off = min(max(self.offset, 0), len(src))
        start = src.rfind("\n", 0, off) + 1
        end = src.find("\n", off)
        end = len(src) if end < 0 else end
        line = src[start:end]
        col = off - start
        # Long lines: show a window around the problem.
        lo = max(0, col - 60)
        hi = min(len(line), col + 60)
        shown = ("..." if lo else "") + line[lo:hi] + ("..." if hi < len(line) else "")
        pad = col - lo + (3 if lo else 0)
        shown = "".join(c if c.isprintable() else "?" for c in shown)
        n = min(self.length, max(1, end - off), 60)
        return f"bad architecture: {self.reason}\n  {shown}\n  {' ' * pad}{'^' * n}"


@dataclass(frozen=True)
class LayerCall:
    """``name(*args, **dict(kwargs))``; ``col``: character offset of the call in the source."""

    name: str
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    col: int = 0
    end: int = 0
    kwcols: tuple[int, ...] = ()


@dataclass(frozen=True)
class Compose:
    """``left <op> right`` with op one of ``'>>'`` (serial), ``'+'`` (sum), ``'|'`` (concat)."""

    op: str
    left: "Desc"
    right: "Desc"
    col: int = 0


Desc = Union[LayerCall, Compose]


def _suggest(name: str, choices) -> str:
    choices = list(choices)
    lower = {c.lower(): c for c in choices}
    hit = lower.get(name.lower())
    if hit is None:
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
        if not close:
            close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.5)
            close = [lower[c] for c in close]
        hit = close[0] if close else None
    return f" (did you mean {hit!r}?)" if hit else ""


class _Parser:
    def __init__(self, text: str, shift: int = 0):
        self.source = text
        self._text = text
        self._shift = shift

    # Positions: ast gives col_offset in UTF-8 bytes of the (single) line; convert to a character
    # offset into the original string.
    def offset(self, lineno: int | None, col: int | None) -> int | None:
        if lineno != 1 or col is None:
            return None
        return self._shift + len(self._text.encode("utf-8")[:max(col, 0)].decode("utf-8", "ignore"))

    def span(self, node) -> tuple[int | None, int]:
        start = self.offset(getattr(node, "lineno", None), getattr(node, "col_offset", None))
        end = self.offset(getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None))
        if start is None:
            return None, 1
        return start, (end - start) if end is not None and end > start else 1

    def fail(self, reason: str, node=None) -> ArchSyntaxError:
        off, n = self.span(node) if node is not None else (None, 1)
        return ArchSyntaxError(reason, self.source, off, n)

    def expr(self, node, depth: int) -> Desc:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} deep", node)
        if isinstance(node, ast.BinOp):
            op = _OPS.get(type(node.op))
            if op is None:
                raise self.fail(
                    "only '>>' (serial), '+' (sum) and '|' (concatenate) combine layers", node)
            # a chain a op b op c is left-nested in the syntax tree: walk it as one level
            spine = []
            while isinstance(node, ast.BinOp) and _OPS.get(type(node.op)) == op:
                spine.append(node)
                node = node.left
            out = self.expr(node, depth + 1)
            for b in reversed(spine):
                out = Compose(op, out, self.expr(b.right, depth + 1), self.span(b)[0] or 0)
            return out
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "serial":
            return self.serial(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Name):
            if node.id in LAYERS:
                raise self.fail(f"layer {node.id} must be called: write {node.id}()", node)
            raise self.fail(self._unknown(node.id), node)
        if isinstance(node, ast.Constant):
            raise self.fail(f"expected a layer such as Dense(...), got the literal {node.value!r}"
                            [:200], node)
        raise self.fail(f"{_WORDS.get(type(node), 'this expression')} not allowed here; "
                        "expected a layer such as Dense(...) combined with >>, + or |", node)

    def serial(self, node: ast.Call, depth: int) -> Desc:
        """``serial(a, b, c)``: the chain ``a >> b >> c`` (layers only, no keywords)."""
        if node.keywords:
            raise self.fail("serial(...) takes layers only, no keywords", node.keywords[0])
        if not node.args:
            raise self.fail("serial(...) needs at least one layer", node)
        out = None
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.fail("* unpacking is not allowed in serial(...)", a)
            d = self.expr(a, depth + 1)
            out = d if out is None else Compose(">>", out, d, self.span(node)[0] or 0)
        return out

    def _unknown(self, name: str) -> str:
        if name.startswith("__"):
            return f"name {name!r} is not allowed; only layer names are"
        return f"unknown layer {name!r}{_suggest(name, LAYERS)}"

    def call(self, node: ast.Call, depth: int) -> LayerCall:
        f = node.func
        if isinstance(f, ast.Attribute):
            raise self.fail("attribute access is not allowed; write the bare layer name, "
                            "e.g. Dense(...) rather than nk.Dense(...)", f)
        if not isinstance(f, ast.Name):
            raise self.fail("only a layer name may be called, e.g. Relu()", f)
        if f.id not in LAYERS:
            raise self.fail(self._unknown(f.id), f)
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.fail("* unpacking is not allowed in layer arguments", a)
            args.append(self.literal(a, depth + 1, f.id))
        kwargs, kwcols = [], []
        seen = set()
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail("** unpacking is not allowed in layer arguments", kw)
            if kw.arg.startswith("_"):
                raise self.fail(f"keyword {kw.arg!r} is not allowed", kw)
            if kw.arg in seen:  # Python rejects this already; keep the check for safety.
                raise self.fail(f"{f.id}: keyword {kw.arg!r} given twice", kw)
            seen.add(kw.arg)
            kwargs.append((kw.arg, self.literal(kw.value, depth + 1, f.id)))
            kwcols.append(self.span(kw)[0] or 0)
        start, n = self.span(node)
        start = start or 0
        return LayerCall(f.id, tuple(args), tuple(kwargs), start, start + n, tuple(kwcols))

    def literal(self, node, depth: int, layer: str):
        if depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} deep", node)
        if isinstance(node, ast.Constant):
            v = node.value
            if v is None or isinstance(v, (bool, str)):
                return v
            if isinstance(v, int):
                return v
            if isinstance(v, float):
                if not math.isfinite(v):
                    raise self.fail("numbers must be finite", node)
                return v
            raise self.fail(f"{layer}: argument must be a number, string, None, True/False or a "
                            f"tuple of those, not {type(v).__name__}", node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = node.operand
            if (isinstance(inner, ast.Constant) and isinstance(inner.value, (int, float))
                    and not isinstance(inner.value, bool)):
                v = self.literal(inner, depth + 1, layer)
                return -v if isinstance(node.op, ast.USub) else v
            raise self.fail("a sign may only precede a number", node)
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self.literal(e, depth + 1, layer) for e in node.elts)
        if isinstance(node, ast.Name):
            hint = ""
            if node.id in ("inf", "nan", "Infinity", "NaN"):
                hint = "; numbers must be finite"
            elif node.id in LAYERS:
                hint = "; layers cannot be arguments"
            elif node.id in ("true", "false", "none", "null"):
                hint = f" (did you mean {node.id.capitalize().replace('Null', 'None')!r}?)"
            else:
                hint = "; quote strings, e.g. padding='SAME'"
            raise self.fail(f"{layer}: name {node.id!r} is not a literal{hint}", node)
        what = _WORDS.get(type(node), "expressions")
        raise self.fail(f"{layer}: arguments must be literals (numbers, strings, None, True/False, "
                        f"tuples); {what} not allowed", node)


def _check_brackets(source: str) -> None:
    """Bound the bracket depth before Python's parser sees the string (approximate about strings:
    it only has to stop pathological nesting, the parser does the rest)."""
    depth = 0
    quote = None
    escaped = False
    for i, c in enumerate(source):
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ArchSyntaxError(f"brackets nested more than {MAX_DEPTH} deep", source, i)
        elif c in ")]}":
            depth -= 1


def parse(source: str) -> Desc:
    """Parse an architecture string into a :class:`LayerCall`/:class:`Compose` tree.

    Raises :class:`ArchSyntaxError` for anything outside the grammar; never evaluates anything.
    """
    if not isinstance(source, str):
        raise ArchSyntaxError(f"architecture must be a string, not {type(source).__name__}")
    if len(source) > MAX_LENGTH:
        raise ArchSyntaxError(f"architecture string is {len(source)} characters long; "
                              f"at most {MAX_LENGTH} are accepted")
    if not source.strip():
        raise ArchSyntaxError("empty architecture; e.g. \"Dense(512) >> Relu() >> Dense(1)\"")
    bad = next((i for i, c in enumerate(source) if c == "\0" or (not c.isprintable()
                                                              and c not in "\n\t ")), None)
    if bad is not None:
        raise ArchSyntaxError("unprintable character", source, bad)
    _check_brackets(source)
    # Newlines and tabs become spaces (same length, so offsets stay right) and leading blanks are
    # skipped, so a string may be written over several lines.
    flat = source.replace("\n", " ").replace("\t", " ").replace("\r", " ")
    lead = len(flat) - len(flat.lstrip(" "))
    p = _Parser(flat[lead:], lead)
    try:
        tree = ast.parse(flat[lead:], mode="eval")
    except SyntaxError as e:
        # SyntaxError.offset counts characters (1-based), unlike ast's byte col_offset.
        msg = (e.msg or "invalid syntax").split(" (")[0].strip() or "invalid syntax"
        if (e.lineno or 1) == 1 and e.offset:
            off = lead + e.offset - 1
            n = (e.end_offset - e.offset) if (e.end_offset or 0) > e.offset else 1
        else:  # Python reports the end of the input as offset 0
            off, n = len(source.rstrip()), 1
            msg = "unexpected end of the architecture string" if msg == "invalid syntax" else msg
        raise ArchSyntaxError(msg, source, off, n) from None
    except (ValueError, MemoryError, RecursionError, OverflowError) as e:
        raise ArchSyntaxError(f"cannot parse: {str(e)[:120]}") from None
    p.source = source
    try:
        return p.expr(tree.body, 0)
    except RecursionError:
        raise ArchSyntaxError(f"nested more than {MAX_DEPTH} deep") from None


def _spine(desc: Desc) -> tuple:
    """``(first, ((op, right), ...))``: a left-nested chain as its operands, without recursion."""
    rights = []
    while isinstance(desc, Compose):
        rights.append(desc)
        desc = desc.left
    return desc, tuple(reversed(rights))


def iter_calls(desc: Desc):
    """All :class:`LayerCall` leaves, left to right."""
    first, rest = _spine(desc)
    yield first
    for node in rest:
        yield from iter_calls(node.right)


def _readout(desc: Desc) -> LayerCall | None:
    """The last width layer on the top-level serial chain (the network's readout), if any."""
    node = desc
    while isinstance(node, Compose) and node.op == ">>":
        node = node.right
    if isinstance(node, LayerCall) and node.name in WIDTH_LAYERS:
        return node
    return None


def with_width(desc: Desc, width: int) -> Desc:
    """Set the width (first argument) of every hidden Dense/Conv to ``width``.

    The readout -- the Dense/Conv that ends the top-level ``>>`` chain -- keeps its width.
    Changing hidden widths leaves the infinite-width kernels unchanged; it changes the finite network.
    """
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ArchSyntaxError(f"width must be a positive integer, got {width!r}")
    keep = _readout(desc)

    def go(d):
        if isinstance(d, Compose):
            first, rest = _spine(d)
            out = go(first)
            for node in rest:
                out = replace(node, left=out, right=go(node.right))
            return out
        if d is keep or d.name not in WIDTH_LAYERS:
            return d
        if d.args:
            return replace(d, args=(width,) + tuple(d.args[1:]))
        arg = _registry.width_argument(d.name)
        kws = tuple((k, width if k == arg else v) for k, v in d.kwargs)
        return replace(d, kwargs=kws)

    return go(desc)


def _lit(v) -> str:
    if isinstance(v, tuple):
        inner = ", ".join(_lit(e) for e in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)


def to_string(desc: Desc) -> str:
    """Canonical architecture string of a description (``parse(to_string(d))`` gives back ``d``'s
    structure)."""
    if isinstance(desc, LayerCall):
        parts = [_lit(a) for a in desc.args] + [f"{k}={_lit(v)}" for k, v in desc.kwargs]
        return f"{desc.name}({', '.join(parts)})"
    # Brackets around every operand that mixes operators (clearer than Python's precedence) and
    # around a right operand with the same operator (they are left-associative). A left-nested
    # chain of one operator is written flat, without recursion.
    first = desc
    rights = []
    while isinstance(first, Compose) and first.op == desc.op:
        rights.append(first.right)
        first = first.left
    parts = [f"({to_string(first)})" if isinstance(first, Compose) else to_string(first)]
    parts += [f"({to_string(r)})" if isinstance(r, Compose) else to_string(r) for r in reversed(rights)]
    return f" {desc.op} ".join(parts)


def _resolve(name: str):
    if name not in LAYERS:  # parse() guarantees this; keep the check at the point of use.
        raise ArchSyntaxError(f"unknown layer {name!r}")
    return _registry.get(name)


def build(desc: Desc, source: str = "", resolve: Callable[[str], Any] | None = None):
    """Instantiate the infntk model described by ``desc``.

    Each call's arguments are bound against the layer's signature first (``inspect.signature``), so a
    wrong argument count or keyword gives an :class:`ArchSyntaxError` naming the layer and the
    position. ``resolve(name)`` maps a layer name to its constructor (default: the public layer
    class of that name).
    """
    resolve = resolve or _resolve

    def err(reason, off=None, n=1):
        return ArchSyntaxError(reason, source, off if source else None, n)

    def combine(d, left, right):
        try:
            if d.op == ">>":
                return left >> right
            if d.op == "+":
                return left + right
            return left | right
        except InfntkError as e:
            raise err(str(e).splitlines()[0], d.col) from e
        except Exception as e:  # a layer refusing to combine: report it, never a trace
            raise err(f"cannot combine with {d.op!r}: {type(e).__name__}: {e}"[:300],
                      d.col) from e

    def go(d):
        if isinstance(d, Compose):
            first, rest = _spine(d)
            out = go(first)
            for node in rest:
                out = combine(node, out, go(node.right))
            return out
        ctor = resolve(d.name)
        kwargs = dict(d.kwargs)
        span = max(1, d.end - d.col)
        try:
            sig = inspect.signature(ctor).replace(return_annotation=inspect.Signature.empty)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            params = sig.parameters
            for (k, _), kc in zip(d.kwargs, d.kwcols or (d.col,) * len(d.kwargs)):
                if k not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
                    names = [p for p in params if not p.startswith("_")]
                    raise err(f"{d.name}() has no argument {k!r}{_suggest(k, names)}; "
                              f"signature: {d.name}{sig}", kc, len(k))
            try:
                sig.bind(*d.args, **kwargs)
            except TypeError as e:
                raise err(f"{d.name}{sig}: {e}", d.col, span) from None
        try:
            return ctor(*d.args, **kwargs)
        except InfntkError as e:
            m = str(e).splitlines()[0]
            raise err(m if m.startswith(d.name) else f"{d.name}: {m}", d.col, span) from e
        except Exception as e:  # bad values (wrong types...): the layer's message, one line
            raise err(f"{d.name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                      [:300], d.col, span) from e

    return go(desc)


def parse_model(source: str, width: int | None = None, resolve=None):
    """Parse and build in one step: ``parse_model("Dense(8) >> Relu() >> Dense(1)")``."""
    desc = parse(source)
    if width is not None:
        desc = with_width(desc, width)
        source = to_string(desc)
    return build(desc, source, resolve)
