"""The sympy symbols every dual is written in.

``X`` is the activation's input; ``Q11, Q22`` are the variances of the two Gaussian pre-activations
(positive) and ``Q12`` their covariance (real). Mean functions :math:`m(q)` use ``Q11`` as :math:`q`.

>>> from infntk.dual.symbols import X, Q11, Q12, Q22
>>> (Q11 * Q22).is_positive
True
"""
import sympy as sp

X = sp.Symbol("x", real=True)
Q11 = sp.Symbol("q11", positive=True)
Q12 = sp.Symbol("q12", real=True)
Q22 = sp.Symbol("q22", positive=True)

__all__ = ["X", "Q11", "Q12", "Q22"]
