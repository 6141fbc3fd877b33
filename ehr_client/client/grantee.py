"""Who can act on a grant: checked by the client before a patient grants, signs or relays one.

The chain stores a grant to any address but the patient's own, and asks for membership only when
the grantee acts (`requestAccess`, `canRead`, `canAmend`). A grant to a stranger, a suspended
member, or to amend for a role that may not write would then sit on chain opening nothing until
the consortium changes its mind; the client refuses such a grant before anything is signed or sent.
"""

from __future__ import annotations

from ehr_client.chain.calls import Call, RpcFailure, call_request, decoded, failure_error, rpc_batch
from ehr_client.chain.client import ChainClient
from ehr_client.chain.txplan import estimate_request
from ehr_client.chain.types import Role, WRITER_ROLES
from ehr_client.errors import InvalidGrantee


def refusal(grantee: str, role: Role, suspended: bool, *, amend: bool) -> str | None:
    """Why `grantee` could not act on a grant now, or None."""
    if role == Role.NONE:
        return f"{grantee} is not a consortium member, so a grant would open nothing for them"
    if suspended:
        return f"{grantee} is a suspended consortium member, so a grant would open nothing for them until reinstated"
    if amend and role not in WRITER_ROLES:
        name = role.name.lower().replace("_", " ")
        return (f"{grantee} is {'an' if name[0] in 'aeiou' else 'a'} {name}; only a provider or a lab may amend "
                "records, so grant read access instead")
    return None


def check_grantee(chain: ChainClient, grantee: str, *, amend: bool, action: str,
                  estimate: tuple[str, Call] | None = None) -> int | None:
    """Raise `InvalidGrantee` unless `grantee` is an active member (a provider or lab for `amend`).

    With `estimate` (sender, call), the call's gas is estimated in the same round trip and returned
    (its predicted revert raised typed first, as `ChainClient.simulate` would)."""
    member = Call(chain.consortium, "memberOf", (grantee,))
    requests = [call_request(member)]
    if estimate is not None:
        sender, call = estimate
        requests.append(estimate_request(sender, call.contract.address, call.data()))
    answers = rpc_batch(chain, requests)
    gas = None
    if estimate is not None:
        answer = answers[1]
        if isinstance(answer, RpcFailure):
            raise failure_error(answer, action=action, what="the transaction's gas estimate")
        gas = int(answer, 16)
    role, suspended, _ = decoded(member, answers[0], action=action)
    reason = refusal(grantee, Role(int(role)), bool(suspended), amend=amend)
    if reason is not None:
        raise InvalidGrantee(f"{action}: {reason}; nothing was granted")
    return gas
