"""Activation duals: sympy expressions of E[phi(u) phi(v)] and E[phi'(u) phi'(v)], compiled to JAX.

>>> from infntk.dual import table, dual_from_expr, X
>>> table.relu().method
'closed-form'
>>> dual_from_expr(X**3 - 2 * X).method
'moments'
"""
from . import table
from .derive import dual_from_expr
from .dual import Dual
from .symbols import Q11, Q12, Q22, X

__all__ = ["Dual", "table", "dual_from_expr", "X", "Q11", "Q12", "Q22"]
