"""``infntk demo``: the guided tour, from ``infntk.demo.main()``."""

from __future__ import annotations

import inspect

import typer

from infntk.cli.common import Unavailable, emit_json, guarded, optional

EPILOG = """[b]Examples[/b]

  infntk demo

  make demo
"""


def demo(
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON (the demo's results)."),
):
    """Run the demo: one model definition, its kernels, symbolic recursion, predictions and studies."""
    with guarded(as_json):
        main = optional("infntk.demo", "main")
        if main is None:
            raise Unavailable("infntk demo: infntk.demo is not available in this build")
        params = inspect.signature(main).parameters
        kw = {}
        if "json" in params:
            kw["json"] = as_json
        elif "as_json" in params:
            kw["as_json"] = as_json
        res = main(**kw)
        if isinstance(res, int) and not isinstance(res, bool) and res != 0:
            raise typer.Exit(res)
        if as_json and not kw:
            emit_json({"ok": True, "result": res if isinstance(res, (dict, list)) else None})
