"""FHIR R4 (4.0.1) checking from HL7's definitions: the derived table, the structural walk
(structure, cardinality, formats, required bindings) and the FHIRPath invariants.

The public entry points are in :mod:`ehr_client.records.fhir`.
"""
