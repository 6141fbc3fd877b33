"""Key custodians for audited key release (Umbral proxy re-encryption, m of n).

- `core.Custodian`: a custodian's decisions (checks the chain on every request);
- `service.create_app` / `server.serve`: its HTTP API and process (`ehr custodian serve`);
- `store.CustodianStore`: its SQLite state (fragments, release and refusal log, MFA);
- `remote.CustodianClient` / `CustodianSet`: the client side; `release.CustodianRelease` the
  grantee's key release; `ehr_client.sharing.audited.AuditedSharing` the patient's and grantee's API.
"""

from ehr_client.custodian.errors import CustodianRefused, CustodianUnavailable, KeyReleaseDenied

__all__ = ["CustodianRefused", "CustodianUnavailable", "KeyReleaseDenied"]
