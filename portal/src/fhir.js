// FHIR R4 resources rendered for people: the fields a patient looks for, per resource type,
// and the whole resource as JSON underneath. Unknown types get the generic view.
import { h } from "./dom.js";

function concept(value) {
  if (!value) return undefined;
  if (value.text) return value.text;
  const coding = (value.coding || [])[0];
  if (!coding) return undefined;
  return coding.display ? `${coding.display}${coding.code ? ` (${coding.code})` : ""}` : coding.code;
}

function quantity(q) {
  if (!q || q.value === undefined) return undefined;
  return `${q.value}${q.unit ? ` ${q.unit}` : q.code ? ` ${q.code}` : ""}`;
}

function range(r) {
  if (!r) return undefined;
  const low = quantity(r.low);
  const high = quantity(r.high);
  return r.text || [low, high].filter(Boolean).join(" – ") || undefined;
}

function list(values) {
  const items = (values || []).filter(Boolean);
  return items.length ? items.join("; ") : undefined;
}

function observationValue(o) {
  return quantity(o.valueQuantity) ?? concept(o.valueCodeableConcept) ?? o.valueString
    ?? (o.valueBoolean !== undefined ? String(o.valueBoolean) : undefined) ?? o.valueDateTime;
}

const VIEWS = {
  Observation: (r) => [
    ["Test", concept(r.code)],
    ["Result", observationValue(r)],
    ["Interpretation", list((r.interpretation || []).map(concept))],
    ["Reference range", list((r.referenceRange || []).map(range))],
    ["Category", list((r.category || []).map(concept))],
    ["Status", r.status],
    ["Taken", r.effectiveDateTime || r.effectivePeriod?.start],
    ["Issued", r.issued],
    ["Components", list((r.component || []).map((c) => `${concept(c.code)}: ${observationValue(c)}`))],
  ],
  Condition: (r) => [
    ["Condition", concept(r.code)],
    ["Clinical status", concept(r.clinicalStatus)],
    ["Verification", concept(r.verificationStatus)],
    ["Severity", concept(r.severity)],
    ["Body site", list((r.bodySite || []).map(concept))],
    ["Onset", r.onsetDateTime || r.onsetString],
    ["Recorded", r.recordedDate],
  ],
  MedicationRequest: (r) => [
    ["Medication", concept(r.medicationCodeableConcept) || r.medicationReference?.display],
    ["Dosage", list((r.dosageInstruction || []).map((d) => d.text))],
    ["Status", r.status],
    ["Intent", r.intent],
    ["Prescribed", r.authoredOn],
    ["Reason", list((r.reasonCode || []).map(concept))],
  ],
  AllergyIntolerance: (r) => [
    ["Allergy", concept(r.code)],
    ["Clinical status", concept(r.clinicalStatus)],
    ["Criticality", r.criticality],
    ["Type", r.type],
    ["Category", list(r.category)],
    ["Reactions", list((r.reaction || []).map((x) =>
      [list((x.manifestation || []).map(concept)), x.severity && `(${x.severity})`].filter(Boolean).join(" ")))],
    ["Recorded", r.recordedDate],
  ],
  Immunization: (r) => [
    ["Vaccine", concept(r.vaccineCode)],
    ["Status", r.status],
    ["Given", r.occurrenceDateTime || r.occurrenceString],
    ["Dose", quantity(r.doseQuantity)],
    ["Lot", r.lotNumber],
    ["Site", concept(r.site)],
  ],
  DiagnosticReport: (r) => [
    ["Report", concept(r.code)],
    ["Status", r.status],
    ["Category", list((r.category || []).map(concept))],
    ["Effective", r.effectiveDateTime || r.effectivePeriod?.start],
    ["Issued", r.issued],
    ["Conclusion", r.conclusion],
    ["Findings", list((r.conclusionCode || []).map(concept))],
    ["Results", list((r.result || []).map((ref) => ref.display || ref.reference))],
  ],
};

/** A readable view of one FHIR resource (an object parsed from the record's JSON). */
export function renderFhir(resource) {
  const type = resource && typeof resource.resourceType === "string" ? resource.resourceType : "Unknown";
  const view = VIEWS[type];
  const rows = view ? view(resource).filter(([, value]) => value !== undefined && value !== "") : [];
  return h("section.fhir", { "data-resource-type": type },
    h("h3", {}, view ? type.replace(/([a-z])([A-Z])/g, "$1 $2") : `${type} (shown as data)`),
    rows.length ? h("dl", {}, rows.map(([label, value]) => [h("dt", {}, label), h("dd", {}, String(value))])) : null,
    h("details", { open: view ? undefined : true },
      h("summary", {}, "The whole resource (FHIR JSON)"),
      h("pre", {}, JSON.stringify(resource, null, 2))));
}
