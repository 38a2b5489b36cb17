"""CLI command groups: one module per group, each exposing ``register(app: typer.Typer)``.

Modules here parse arguments, call the library and print. No logic lives here.
"""
