"""Local nodes and daemons for the demo, the tests and the bench (never used by the library itself)."""
