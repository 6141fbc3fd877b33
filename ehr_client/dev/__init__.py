"""Local runners for demo, tests and bench: geth Clique validators (and, later, Anvil and Kubo).

Used by the CLI, tests and bench, never by the library.
"""
