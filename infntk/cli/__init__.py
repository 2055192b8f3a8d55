"""The ``infntk`` command: describe, kernel, predict, converge, study, demo.

Every command takes ``--json`` (machine-readable results on stdout) and ``--help`` (with examples).
Exit codes: 0 success, 2 bad usage or input, 1 computation failure. ``--debug`` anywhere on the
command line (or ``INFNTK_DEBUG=1``) shows tracebacks.
"""

from __future__ import annotations

import sys
import traceback

import typer
from typer.exceptions import TyperException

from infntk.cli import demo as _demo
from infntk.cli import describe as _describe
from infntk.cli import kernel as _kernel
from infntk.cli import predict as _predict
from infntk.cli import studies as _studies
from infntk.cli.common import err, state

__all__ = ["app", "main"]

EPILOG = """[b]Examples[/b]

  infntk describe "Dense(512, W_std=1.5) >> Relu() >> Dense(1)"

  infntk kernel "Dense(512) >> Relu() >> Dense(1)" --data iris --out k.npz

  infntk predict "Dense(512) >> Erf() >> Dense(1)" --data digits --kernel ntk

  infntk converge "Dense(512) >> Relu() >> Dense(1)" --widths 64,256,1024 --seeds 8

  infntk demo

Architectures are written in the layer algebra: [b]>>[/b] in series, [b]+[/b] sums branches, [b]|[/b] concatenates them. {layers}
"""


def layer_list() -> str:
    """The help text's list of layers: those architecture strings accept (:data:`infntk.arch.LAYERS`,
    read from the layer registry), the activations apart."""
    from infntk.arch import LAYERS
    from infntk.layers.registry import is_activation

    acts = [n for n in LAYERS if is_activation(n)]
    others = [n for n in LAYERS if not is_activation(n)]
    return f"Layers: {', '.join(others)} and the activations {', '.join(acts)}."


EPILOG = EPILOG.format(layers=layer_list())

app = typer.Typer(
    name="infntk",
    help="Analytic infinite-width NNGP/NTK kernels of neural networks.",
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
):
    """Analytic infinite-width NNGP/NTK kernels of neural networks."""
    if debug:
        state.debug = True


app.command("describe", epilog=_describe.EPILOG)(_describe.describe)
app.command("kernel", epilog=_kernel.EPILOG)(_kernel.kernel)
app.command("predict", epilog=_predict.EPILOG)(_predict.predict)
app.command("converge", epilog=_studies.CONVERGE_EPILOG)(_studies.converge)
app.add_typer(_studies.study_app, name="study")
app.command("demo", epilog=_demo.EPILOG)(_demo.demo)


def main(argv=None) -> None:
    """Entry point of the ``infntk`` script (``[project.scripts]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line, not only before the command.
    if "--debug" in args:
        args = [a for a in args if a != "--debug"]
        state.debug = True
    try:
        rv = app(args=args, prog_name="infntk", standalone_mode=False)
    except TyperException as e:  # click usage errors: one line, exit 2
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())
            sys.exit(2)
        if state.debug:
            traceback.print_exc()
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        msg = " ".join(e.format_message().split())
        err.print(f"infntk: error: {msg}{where}", markup=False, highlight=False)
        sys.exit(getattr(e, "exit_code", 2) or 2)
    except typer.Abort:
        err.print("infntk: aborted")
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)
