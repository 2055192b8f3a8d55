"""Table activations with independent numpy definitions of phi and phi' (written from the maths,
not from infntk), for the reference quadrature."""
import math

import numpy as np
from scipy import special

from infntk.dual import table

SQ2PI = math.sqrt(2 * math.pi)


def _he(n):
    c = np.zeros(n + 1)
    c[n] = 1.0
    return lambda x: np.polynomial.hermite_e.hermeval(x, c) / math.sqrt(math.factorial(n))


def _he_d(n):
    c = np.zeros(n + 1)
    c[n] = 1.0
    dc = np.polynomial.hermite_e.hermeder(c)
    return lambda x: np.polynomial.hermite_e.hermeval(x, dc) / math.sqrt(math.factorial(n))


def _rect(n):
    return lambda x: np.where(x >= 0, np.abs(x) ** n, 0.0)


def _rect_d(n):
    return lambda x: np.where(x >= 0, n * np.abs(x) ** (n - 1), 0.0)


# name -> (dual factory, phi, phi' (None: T' is a convention, tested separately), breakpoints)
CASES = {
    "relu": (table.relu, lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0, (0.0,)),
    "abrelu": (lambda: table.abrelu(-0.3, 2.0),
               lambda x: -0.3 * np.minimum(x, 0) + 2.0 * np.maximum(x, 0),
               lambda x: np.where(x < 0, -0.3, 2.0), (0.0,)),
    "leaky_relu": (lambda: table.leaky_relu(0.1), lambda x: np.where(x < 0, 0.1 * x, x),
                   lambda x: np.where(x < 0, 0.1, 1.0), (0.0,)),
    "abs": (table.abs_, np.abs, np.sign, (0.0,)),
    "erf": (lambda: table.erf(2.0, 0.5, 0.3), lambda x: 2.0 * special.erf(0.5 * x) + 0.3,
            lambda x: 2.0 * 0.5 * 2 / math.sqrt(math.pi) * np.exp(-0.25 * x * x), ()),
    "gelu": (table.gelu, lambda x: x * special.ndtr(x),
             lambda x: special.ndtr(x) + x * np.exp(-x * x / 2) / SQ2PI, ()),
    "sin": (lambda: table.sin(1.5, 0.7, 0.3), lambda x: 1.5 * np.sin(0.7 * x + 0.3),
            lambda x: 1.5 * 0.7 * np.cos(0.7 * x + 0.3), ()),
    "cos": (lambda: table.cos(1.2, 0.8, 0.4), lambda x: 1.2 * np.cos(0.8 * x + 0.4),
            lambda x: -1.2 * 0.8 * np.sin(0.8 * x + 0.4), ()),
    "exp": (lambda: table.exp(0.5, 0.6), lambda x: 0.5 * np.exp(0.6 * x),
            lambda x: 0.3 * np.exp(0.6 * x), ()),
    "gaussian": (lambda: table.gaussian(1.3, -0.7), lambda x: 1.3 * np.exp(-0.7 * x * x),
                 lambda x: 1.3 * -1.4 * x * np.exp(-0.7 * x * x), ()),
    "rbf": (lambda: table.rbf(0.5), lambda x: math.sqrt(2) * np.sin(x + math.pi / 4),
            lambda x: math.sqrt(2) * np.cos(x + math.pi / 4), ()),
    "sign": (table.sign, np.sign, None, (0.0,)),
    "monomial3": (lambda: table.monomial(3), lambda x: x**3, lambda x: 3 * x**2, ()),
    "monomial4": (lambda: table.monomial(4), lambda x: x**4, lambda x: 4 * x**3, ()),
    "rect0": (lambda: table.rectified_monomial(0), _rect(0), None, (0.0,)),
    "rect1": (lambda: table.rectified_monomial(1), _rect(1), _rect_d(1), (0.0,)),
    "rect2": (lambda: table.rectified_monomial(2), _rect(2), _rect_d(2), (0.0,)),
    "rect3": (lambda: table.rectified_monomial(3), _rect(3), _rect_d(3), (0.0,)),
    "polynomial": (lambda: table.polynomial([0.5, -1.0, 0.0, 2.0]),
                   lambda x: 0.5 - x + 2 * x**3, lambda x: -1 + 6 * x**2, ()),
    "hermite3": (lambda: table.hermite(3), _he(3), _he_d(3), ()),
    "hermite0": (lambda: table.hermite(0), _he(0), _he_d(0), ()),
}

# (q11, q22) pairs and correlations (incl. the boundary) of the test grid
VARIANCES = [(0.3, 0.5), (1.0, 1.0), (2.5, 1.7), (1.0, 2.0)]
RHOS = [-1.0, -0.999, -0.5, 0.0, 0.3, 0.999, 1.0]
