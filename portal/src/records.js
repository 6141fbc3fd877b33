// Opening a record in the browser: ciphertext from the portal, checked by format.js against the
// chain's content hash and identity, decrypted with the patient's derived key (format.js). Nothing is
// shown from a record that fails a check.
import { encodeAbiParameters, keccak256 } from "viem";
import { api } from "./api.js";
import {
  BindingError, DecryptionError, IntegrityError, KeyNotFoundError, bindingAssociatedData, buildPackageHeader,
  bytesToHex, concatBytes, encryptEnvelope, makeUmbralPlaintext, openPackage, wrapDataKey,
} from "./format.js";

export const FHIR_MEDIA_TYPE = "application/fhir+json";

export class VerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = "VerificationError";
  }
}

/** The binding the chain lists for a record (what the stored package must name). */
export function expectedBinding(record) {
  return { recordId: record.recordId, patient: record.patient, scope: BigInt(record.scope), author: record.author,
    contentHash: record.contentHash };
}

/** Fetch, verify and decrypt one record version for the patient; returns
 * {plaintext, dataKey, mediaType, binding}. */
export async function openRecord(record, session) {
  if (record.status === "tombstoned") {
    throw new VerificationError("This record was erased (tombstoned on chain); there is nothing to open.");
  }
  const bytes = await api.blob(record.cid);
  try {
    return await openPackage(bytes, {
      reader: session.account,
      x25519Secrets: session.secrets,
      expected: expectedBinding(record),
    });
  } catch (error) {
    if (error instanceof IntegrityError) {
      throw new VerificationError(
        "The stored data does not match the hash anchored on chain (altered or replaced in storage); nothing was decrypted.");
    }
    if (error instanceof BindingError) {
      throw new VerificationError(`This record failed verification: ${error.message}`);
    }
    if (error instanceof DecryptionError) {
      throw new VerificationError(
        "This record failed verification: it does not decrypt with your key (tampered, or sealed to another key); nothing is shown.");
    }
    if (error instanceof KeyNotFoundError) {
      throw new VerificationError(`This record was not sealed to your wallet's derived key: ${error.message}`);
    }
    throw error;
  }
}

/** Record versions grouped into chains (first version first), newest chain first. */
export function versionChains(records) {
  const byId = new Map(records.map((r) => [r.recordId, r]));
  const amended = new Set(records.map((r) => r.previousId).filter(Boolean));
  const chains = [];
  for (const record of records) {
    if (amended.has(record.recordId)) continue; // not the newest of its chain
    const chain = [record];
    let previous = record.previousId;
    while (previous && byId.has(previous)) {
      chain.unshift(byId.get(previous));
      previous = byId.get(previous).previousId;
    }
    chains.push(chain);
  }
  return chains.reverse();
}

/** RecordRegistry.recordIdOf(author, salt): keccak256(abi.encode(uint8 1, author, salt)). */
export function recordIdOf(author, saltHex) {
  return keccak256(encodeAbiParameters([{ type: "uint8" }, { type: "address" }, { type: "bytes32" }], [1, author, saltHex]));
}

/**
 * Key rotation in the browser: the same content as a new version under a fresh data key, sealed to
 * the patient only (as EHRClient.reencrypt_record). Returns {package, salt, recordId, version}; the
 * caller stores the package and anchors it with amendRecord from the wallet.
 */
/** The new version's package. `umbral` ({keyVersion, encrypt(plaintext) -> {capsule, ciphertext}}),
 * when given, adds the Umbral section Python's writer adds for a patient with an Umbral key, so the
 * rotated version can still be released through the key custodians. */
export async function rotatedPackage(record, opened, session, { umbral = null } = {}) {
  const salt = "0x" + bytesToHex(crypto.getRandomValues(new Uint8Array(32)));
  const dataKey = crypto.getRandomValues(new Uint8Array(32));
  const version = opened.binding.version + 1n;
  const binding = { recordId: recordIdOf(session.account, salt), version, patient: session.account,
    scope: BigInt(record.scope), author: session.account };
  const ad = bindingAssociatedData(binding);
  const [keyVersion] = [...session.secrets.keys()];
  const wrapped = await wrapDataKey(dataKey, session.keys.x25519Public, ad);
  const section = umbral === null ? null
    : { keyVersion: umbral.keyVersion, ...umbral.encrypt(makeUmbralPlaintext(binding, dataKey)) };
  const header = buildPackageHeader({ version, mediaType: opened.mediaType, binding,
    wraps: [{ reader: session.account, keyVersion, wrapped }], umbral: section });
  const envelope = await encryptEnvelope(opened.plaintext, dataKey, ad);
  dataKey.fill(0);
  return { package: concatBytes(header, envelope), salt, recordId: binding.recordId, version };
}
