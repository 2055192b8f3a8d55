"""``infntk demo``: the guided tour, from ``infntk.demo.main()``."""

from __future__ import annotations

import typer

from infntk.cli.common import guarded

EPILOG = """[b]Examples[/b]

  infntk demo

  make demo
"""


def demo(
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON (the demo's results)."),
):
    """Run the demo: one model definition, its kernels, symbolic recursion, predictions and studies."""
    with guarded(as_json):
        from infntk.demo import main

        main(json=as_json)
