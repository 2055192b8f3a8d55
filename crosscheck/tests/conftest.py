"""Cross-check suite: infntk against neural-tangents 0.6.5, in float64.

Runs only in the pinned peer environment (`make crosscheck` builds `.venv-nt` from
crosscheck/requirements.txt). A missing or wrong peer is an error, never a silent skip.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow (pulled by neural-tangents) is chatty

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import neural_tangents  # noqa: E402,F401  -- must import: this suite has no meaning without it

NT_VERSION = "0.6.5"
assert neural_tangents.__version__ == NT_VERSION, (
    f"cross-check needs neural-tangents {NT_VERSION}, found {neural_tangents.__version__}; "
    "run `make crosscheck` (it builds .venv-nt from crosscheck/requirements.txt)")
assert jax.numpy.zeros(1).dtype == jax.numpy.float64, "x64 must be enabled"
