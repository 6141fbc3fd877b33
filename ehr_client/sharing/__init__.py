"""The reader's and patient's side of audited key release through key custodians.

`audited.AuditedSharing` delegates a patient's records to a grantee through m-of-n custodians,
rotates and erases them; `release.CustodianRelease` is the `KeyRelease` a reader passes to
`EHRClient.read_record`; `remote` talks to custodians over HTTP.
"""
