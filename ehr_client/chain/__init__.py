"""Talking to the contracts: bindings, EIP-712 consent, revert decoding, event reads."""
