"""CLI command groups: one module per group, each exposing ``register(app: typer.Typer)``, beside
domains.py (every numeric option's range) and shared.py (what several commands declare alike).

Modules here parse arguments, call the library and print. No logic lives here.
"""
