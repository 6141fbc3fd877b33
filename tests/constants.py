"""Numbers the contract tests share; they mirror the enums in contracts/interfaces."""

ROLE = {"provider": 1, "insurer": 2, "lab": 3, "auditor": 4, "custodian": 5, "validator": 6}
ACTION = {"admit": 0, "reinstate": 1, "add_governor": 2, "remove_governor": 3, "set_threshold": 4}
ACCESS_READ, ACCESS_AMEND = 1, 2
LAB_SCOPE, CONDITION_SCOPE, MENTAL_SCOPE = 1 << 1, 1 << 3, 1 << 9
DAY = 24 * 3600
PURPOSE = "treatment"
CONSENT_DOMAIN_NAME = "EHR Consent (test consortium)"
