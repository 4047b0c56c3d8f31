"""The ``reintegra`` command line (``reintegra = "reintegra_stack.cli:main"`` in pyproject).

One typer app; every command lives in its own small module so that commands can be added
without editing this file:

    # reintegra_stack/commands_demo.py
    import typer

    def demo(cases: int = 100) -> None:
        \"\"\"Feed demo cases through the running stack.\"\"\"
        ...

    def register(app: typer.Typer) -> None:
        app.command()(demo)

Every ``reintegra_stack/commands_*.py`` module is imported in name order and its
``register(app)`` called. Keep imports of heavy dependencies inside the command functions
so that ``reintegra --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import reintegra_stack

app = typer.Typer(
    name="reintegra",
    help="Reintegra: run the stack locally and operate it.",
    no_args_is_help=True,
    add_completion=False,
)


def _register_commands() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(reintegra_stack.__path__)):
        if module.startswith("commands_"):
            importlib.import_module(f"reintegra_stack.{module}").register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
