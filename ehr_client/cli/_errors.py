"""Errors become one `error: …` line on stderr and an exit code a script can act on.

=====  =====================================================================================
code   meaning
=====  =====================================================================================
0      success
1      any other ehr error (reverted transaction, invalid record, bad config, wrong password)
2      usage error (bad option or argument; click's own code)
3      access denied (no valid grant, not a member, not a governor)
4      integrity failure (stored bytes differ from the chain, decryption failed)
5      infrastructure down (chain node or storage node unreachable)
6      not found (record, key, blob, or the record was erased)
=====  =====================================================================================
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from ehr_client.custodian.errors import CustodianUnavailable
from ehr_client.errors import (
    AccessDenied,
    BlobNotFound,
    ChainMismatch,
    ChainUnavailable,
    ClaimProofRejected,
    DecryptionError,
    EHRError,
    IntegrityError,
    KeyNotFound,
    MalformedProof,
    RecordErased,
    RecordNotFound,
    StorageUnavailable,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DENIED, EXIT_INTEGRITY, EXIT_DOWN, EXIT_NOT_FOUND = 0, 1, 2, 3, 4, 5, 6

_CODES: tuple[tuple[tuple[type[Exception], ...], int], ...] = (
    ((AccessDenied,), EXIT_DENIED),
    ((IntegrityError, DecryptionError, ChainMismatch, ClaimProofRejected, MalformedProof), EXIT_INTEGRITY),
    ((ChainUnavailable, StorageUnavailable, CustodianUnavailable), EXIT_DOWN),
    ((RecordNotFound, KeyNotFound, BlobNotFound, RecordErased), EXIT_NOT_FOUND),
)
_MAX_MESSAGE = 600


def exit_code(exc: BaseException) -> int:
    for types, code in _CODES:
        if isinstance(exc, types):
            return code
    return EXIT_ERROR


def one_line(message: str) -> str:
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def report(exc: BaseException) -> int:
    """Print `error: <message>` to stderr and return the exit code for `exc`."""
    message = one_line(str(exc)) or type(exc).__name__
    typer.echo(f"error: {message}", err=True)
    return exit_code(exc)


def library_error(exc: Exception) -> EHRError | None:
    """An ehr error for a failure of requests or web3 that is still a user error, else None.

    Looked up in sys.modules rather than imported: a command that never loaded web3 cannot have
    raised its exceptions, and `ehr --help` must not pay for importing it.
    """
    web3_errors = sys.modules.get("web3.exceptions")
    requests = sys.modules.get("requests")
    if web3_errors is not None and isinstance(exc, web3_errors.BadFunctionCallOutput):
        return EHRError(
            "the contracts in the deployment file answer nothing on this node (wrong --network or --rpc, "
            "or the node was reset); redeploy with `ehr deploy`"
        )
    if requests is not None and isinstance(exc, requests.RequestException):
        return ChainUnavailable(f"lost the connection to the chain node ({type(exc).__name__}); check `ehr node status`")
    if web3_errors is not None and isinstance(exc, web3_errors.Web3Exception):  # an answer not translated yet
        return EHRError(f"the chain node refused the request: {exc}")
    return None


class ErrorReportingGroup(TyperGroup):
    """The root command group: an ehr error ends the command with one line and its exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except EHRError as exc:
            raise typer.Exit(report(exc)) from None
        except BrokenPipeError:  # `ehr … | head`: the reader left; say nothing more
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_ERROR) from None
        except Exception as exc:
            translated = library_error(exc)  # before OSError: requests' exceptions are OSErrors
            if translated is not None:
                raise typer.Exit(report(translated)) from None
            if not isinstance(exc, OSError):
                raise
            # an unreadable input file, an unwritable output, …
            detail = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
            raise typer.Exit(report(EHRError(detail))) from None
