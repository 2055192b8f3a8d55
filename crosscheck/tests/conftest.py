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


# -- reports/stax_errors.md: worst relative error per architecture family ------------------------
# test_stax_vs_nt.py records each case's errors as a user property; user properties travel with the
# test reports, so under pytest-xdist the controller sees every worker's. Only the controller (or a
# run without xdist) writes, and only after a run that compared every architecture.
from _stax_report import REPORT, STAX_ERROR_PROPERTY, write_report  # noqa: E402

_STAX_ERRORS: list = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        _STAX_ERRORS.extend(value for name, value in report.user_properties
                            if name == STAX_ERROR_PROPERTY)


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput") or not _STAX_ERRORS:
        return
    from importlib.metadata import version

    from archs import ARCHS
    versions = {"neural-tangents": neural_tangents.__version__, "jax": jax.__version__,
                "infntk": version("infntk")}
    rtol = max(r["rtol"] for r in _STAX_ERRORS)
    if write_report(_STAX_ERRORS, ARCHS, rtol, versions):
        terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"crosscheck: wrote {os.path.relpath(REPORT)}")
