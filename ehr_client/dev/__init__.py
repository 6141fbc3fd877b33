"""Local nodes and daemons for the demo, the tests and the bench: Anvil, geth Clique validators.

Used by the CLI, tests and bench, never by the library (an import-linter contract checks it).
"""
