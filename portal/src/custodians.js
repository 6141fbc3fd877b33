// Audited key release from the browser: the patient's side of ehr_client/sharing/audited.py.
//
// The custodians are reached through the portal's own origin (/api/custodians, a pass-through
// that forwards wallet-signed requests unchanged). Key fragments are made here with the patient's
// wallet-derived Umbral secret and sealed here to each custodian's on-chain X25519 key, so the
// portal sees only sealed bytes. Requests are EIP-712 messages in the custodians' domain
// (ehr_client/custodian/messages.py), signed by the wallet; erasure receipts are checked here by
// recovering their signer, never taken on the portal's word.
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { api } from "./api.js";
import {
  DecryptionError, checkBinding, checkContentHash, dataKeyFromUmbralPlaintext, fragmentAssociatedData, parsePackage,
  sealPayload,
} from "./format.js";
import { bytesToHex, hexToBytes, toChecksumAddress } from "./keys.js";
import { expectedBinding } from "./records.js";
import * as umbral from "./umbral.js";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

export class CustodianError extends Error {
  constructor(message) {
    super(message);
    this.name = "CustodianError";
  }
}

let umbralLoaded = null;

/** The Umbral WASM, served by the portal next to the bundle (CSP: script-src 'wasm-unsafe-eval'). */
export function loadUmbral() {
  if (umbralLoaded === null) {
    umbralLoaded = umbral.initUmbral(new URL("umbral.wasm", document.baseURI));
    umbralLoaded.catch(() => { umbralLoaded = null; });
  }
  return umbralLoaded;
}

/** What rotatedPackage needs to add an Umbral section: Umbral-encrypt to the patient's own key. */
export async function umbralSealer(umbralPublic, keyVersion) {
  await loadUmbral();
  return { keyVersion, encrypt: (plaintext) => umbral.encrypt(umbralPublic, plaintext) };
}

// --- EIP-712 in the custodians' domain (static field types only: address, bytes32, uintN, string) ---

const utf8 = (text) => new TextEncoder().encode(text);

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) { out.set(part, offset); offset += part.length; }
  return out;
}

function word(value) {
  let v = BigInt(value);
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
  return out;
}

function encodeField(type, value) {
  if (type === "string") return keccak_256(utf8(value));
  if (type === "address") return concat(new Uint8Array(12), hexToBytes(value));
  if (type === "bytes32") {
    const raw = hexToBytes(value);
    if (raw.length !== 32) throw new CustodianError(`expected 32 bytes, got ${raw.length}`);
    return raw;
  }
  if (/^uint\d+$/.test(type)) return word(value);
  throw new CustodianError(`unsupported EIP-712 field type ${type}`);
}

function structHash(types, name, value) {
  const fields = types[name];
  const typeHash = keccak_256(utf8(`${name}(${fields.map((f) => `${f.type} ${f.name}`).join(",")})`));
  return keccak_256(concat(typeHash, ...fields.map((f) => encodeField(f.type, value[f.name]))));
}

/** The EIP-712 digest of {types, primaryType, domain, message}. */
export function typedDataDigest(typed) {
  return keccak_256(concat(new Uint8Array([0x19, 0x01]), structHash(typed.types, "EIP712Domain", typed.domain),
    structHash(typed.types, typed.primaryType, typed.message)));
}

function bigOf(bytes) {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** The checksummed address that signed `typed`, or null when the signature is malformed or not
 * canonical (r, s in range, low s, v 27/28 or 0/1): never a guess. */
export function recoverTypedSigner(typed, signature) {
  try {
    const sig = hexToBytes(signature);
    if (sig.length !== 65) return null;
    const r = bigOf(sig.subarray(0, 32));
    const s = bigOf(sig.subarray(32, 64));
    const v = sig[64] >= 27 ? sig[64] - 27 : sig[64];
    if (!(r > 0n && r < N && s > 0n && s <= N / 2n) || (v !== 0 && v !== 1)) return null;
    const point = secp256k1.Signature.fromBytes(sig.subarray(0, 64), "compact").addRecoveryBit(v)
      .recoverPublicKey(typedDataDigest(typed));
    return toChecksumAddress(bytesToHex(keccak_256(point.toBytes(false).subarray(1)).subarray(12)));
  } catch {
    return null;
  }
}

/** JSON with keys sorted and no spaces: Python's json.dumps(sort_keys=True, separators=(",", ":"))
 * for the values deposits hold (ASCII strings and safe integers). */
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  if (typeof value === "number" && !Number.isSafeInteger(value)) throw new CustodianError("deposits hold integers only");
  return JSON.stringify(value);
}

/** What a Deposit signature covers (ehr_client.custodian.core.fragments_digest). */
export function fragmentsDigest(items) {
  return bytesToHex(sha256(utf8(canonicalJson(items))));
}

function typedFor(listing, kind, message) {
  return { types: { EIP712Domain: listing.types.EIP712Domain, [kind]: listing.types[kind] }, primaryType: kind,
    domain: listing.domain, message };
}

/** A custodian request signed by the wallet: {message, signature}, with issue time and a fresh nonce. */
export async function signRequest(listing, signTypedData, kind, message) {
  const nonce = bytesToHex(crypto.getRandomValues(new Uint8Array(32)));
  const full = { ...message, issuedAt: Math.floor(Date.now() / 1000), nonce };
  return { message: full, signature: await signTypedData(typedFor(listing, kind, full)) };
}

// --- the patient's side ----------------------------------------------------------------------------

/** Check one record for audited release, as AuditedSharing.delegate does: the stored package is the
 * one the chain anchored, names this record, carries a capsule sealed to the patient's current
 * Umbral key, and that capsule opens with the patient's secret TO THIS RECORD (a capsule copied
 * from another record's header must not be re-encrypted to the grantee). Returns the capsule, or
 * throws CustodianError saying why the record is skipped. */
export async function capsuleOf(record, { umbralSecret, umbralPublic, umbralVersion }) {
  const bytes = await api.blob(record.cid);
  await checkContentHash(bytes, record.contentHash).catch(() => {
    throw new CustodianError("its stored data does not match the hash anchored on chain");
  });
  let parsed;
  let binding;
  try {
    parsed = parsePackage(bytes);
    binding = checkBinding(parsed, expectedBinding(record));
  } catch (error) {
    throw new CustodianError(`it failed verification (${error.message})`);
  }
  if (parsed.umbral === null) throw new CustodianError("it carries no Umbral capsule (written before your Umbral key was published)");
  if (parsed.umbral.keyVersion !== umbralVersion) {
    throw new CustodianError(`its capsule is sealed to Umbral key version ${parsed.umbral.keyVersion}, not your wallet's (${umbralVersion})`);
  }
  try {
    const plaintext = umbral.decryptOriginal(umbralSecret, parsed.umbral.capsule, parsed.umbral.ciphertext);
    dataKeyFromUmbralPlaintext(plaintext, binding).fill(0);
  } catch (error) {
    if (error instanceof DecryptionError || error instanceof umbral.UmbralError) {
      throw new CustodianError("its Umbral capsule does not open to this record with your key (copied from another record?); "
        + "no fragment was made");
    }
    throw error;
  }
  return { capsule: parsed.umbral.capsule, delegatingKey: umbralPublic, keyVersion: parsed.umbral.keyVersion };
}

/**
 * Deposit m-of-n fragments of `records` for `grantee` (AuditedSharing.delegate, in the browser):
 * one fragment per custodian the portal lists now, sealed to it; one wallet-signed Deposit per
 * custodian. Returns {shared, skipped: [{recordId, reason}], stored, unavailable, refused, threshold}.
 * Depositing again replaces the earlier fragment of the same record and grantee (no duplicates).
 */
export async function delegate({ listing, account, keys, umbralVersion, grantee, receivingPublic, records, signTypedData,
  progress = () => {} }) {
  await loadUmbral();
  const custodians = listing.custodians;
  const threshold = listing.threshold;
  if (custodians.length < threshold) {
    throw new CustodianError(`only ${custodians.length} custodian(s) answer the portal now, fewer than the threshold `
      + `${threshold}; nothing was deposited`);
  }
  const items = new Map(custodians.map((c) => [c.address, []]));
  const shared = [];
  const skipped = [];
  for (const record of records) {
    let capsule;
    try {
      capsule = await capsuleOf(record, { umbralSecret: keys.umbralSecret, umbralPublic: keys.umbralPublic, umbralVersion });
    } catch (error) {
      if (!(error instanceof CustodianError)) throw error;
      skipped.push({ recordId: record.recordId, reason: error.message });
      continue;
    }
    const kfrags = umbral.generateKFrags({ delegatingSecret: keys.umbralSecret, receivingPublic, threshold,
      shares: custodians.length });
    const delegation = bytesToHex(crypto.getRandomValues(new Uint8Array(16)));
    for (const [i, custodian] of custodians.entries()) {
      const publicKey = hexToBytes(custodian.x25519PublicKey);
      const sealed = await sealPayload(kfrags[i], publicKey,
        fragmentAssociatedData(custodian.address, record.recordId, grantee));
      kfrags[i].fill(0);
      items.get(custodian.address).push({
        recordId: record.recordId.toLowerCase(), sealed: bytesToHex(sealed), sealedTo: bytesToHex(publicKey),
        capsule: bytesToHex(capsule.capsule), delegatingKey: bytesToHex(capsule.delegatingKey),
        delegatingKeyVersion: capsule.keyVersion, threshold, shares: custodians.length, delegation,
      });
    }
    shared.push(record.recordId);
  }
  const stored = [];
  const unavailable = [];
  const refused = [];
  if (shared.length) {
    for (const custodian of custodians) {
      const batches = depositBatches(items.get(custodian.address));
      try {
        for (const [i, batch] of batches.entries()) {
          progress(`sign deposit ${i + 1} of ${batches.length} for custodian ${custodian.address.slice(0, 10)}… in your wallet`);
          const body = await signRequest(listing, signTypedData, "Deposit", { custodian: custodian.address, patient: account,
            grantee, fragments: fragmentsDigest(batch) });
          await api.custodian(custodian.address, "deposit", { ...body, fragments: batch });
        }
        stored.push(custodian.address);
      } catch (error) {
        if (error.type === "CustodianRefused") refused.push({ custodian: custodian.address, reason: error.message });
        else unavailable.push({ custodian: custodian.address, reason: error.message });
      }
    }
  }
  return { shared, skipped, stored, unavailable, refused, threshold };
}

/** Deposit bodies are limited to 64 KiB (the custodians' limit, and the portal's): items split into
 * batches of at most DEPOSIT_BATCH_BYTES of JSON, each its own signed Deposit. */
export const DEPOSIT_BATCH_BYTES = 48 * 1024;

export function depositBatches(items) {
  const batches = [];
  let current = [];
  let size = 0;
  for (const item of items) {
    const length = canonicalJson(item).length + 1;
    if (current.length && size + length > DEPOSIT_BATCH_BYTES) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += length;
  }
  if (current.length) batches.push(current);
  return batches;
}

/** Check an erasure receipt here: its message must name `custodian`, `patient` and `recordId`, and
 * its signature must recover to that custodian in this deployment's custodian domain. */
export function checkReceipt(listing, receipt, { custodian, patient, recordId }) {
  const message = receipt && receipt.message;
  const fields = listing.types.ErasureReceipt.map((f) => f.name);
  if (!message || typeof receipt.signature !== "string" || Object.keys(message).sort().join() !== [...fields].sort().join()) {
    return { verified: false, why: "not an erasure receipt" };
  }
  let signer;
  try {
    signer = recoverTypedSigner(typedFor(listing, "ErasureReceipt", message), receipt.signature);
  } catch {
    signer = null;
  }
  const names = (a, b) => typeof a === "string" && a.toLowerCase() === b.toLowerCase();
  if (signer === null || signer !== toChecksumAddress(custodian)) return { verified: false, why: `not signed by ${custodian}` };
  if (!names(message.custodian, custodian) || !names(message.patient, patient) || !names(message.recordId, recordId)) {
    return { verified: false, why: "it names another custodian, patient or record" };
  }
  return { verified: true, why: "" };
}

/** One wallet-signed Destroy per custodian per record version; each receipt checked here.
 * Returns {receipts: [{custodian, recordId, destroyed, remaining, erasedAt, verified, why}], unavailable}. */
export async function destroyEverywhere({ listing, account, recordIds, signTypedData, progress = () => {} }) {
  const receipts = [];
  // custodians the portal knows but cannot reach now: no receipt from them yet
  const unavailable = (listing.unreachableCustodians || []).flatMap((custodian) => recordIds.map((recordId) =>
    ({ custodian, recordId, reason: "it does not answer the portal" })));
  for (const custodian of listing.custodians) {
    for (const recordId of recordIds) {
      progress(`sign the destruction request for custodian ${custodian.address.slice(0, 10)}… in your wallet`);
      const body = await signRequest(listing, signTypedData, "Destroy", { custodian: custodian.address, patient: account,
        recordId });
      let answer;
      try {
        answer = await api.custodian(custodian.address, "destroy", body);
      } catch (error) {
        unavailable.push({ custodian: custodian.address, recordId, reason: error.message });
        continue;
      }
      const check = checkReceipt(listing, answer, { custodian: custodian.address, patient: account, recordId });
      const m = answer && answer.message ? answer.message : {};
      receipts.push({ custodian: custodian.address, recordId, destroyed: Number(m.destroyed), remaining: Number(m.remaining),
        erasedAt: Number(m.erasedAt), ...check });
    }
  }
  return { receipts, unavailable };
}

/** Which custodians released a fragment for each access request (AuditQuery per custodian):
 * Map accessTx (lower case) -> [custodian]. Custodians that do not answer are listed apart. */
export async function releases({ listing, account, signTypedData }) {
  const released = new Map();
  const unavailable = [];
  for (const custodian of listing.custodians) {
    const body = await signRequest(listing, signTypedData, "AuditQuery", { custodian: custodian.address, patient: account });
    try {
      const answer = await api.custodian(custodian.address, "audit", body);
      for (const entry of answer.releases || []) {
        const tx = String(entry.accessTx).toLowerCase();
        released.set(tx, [...(released.get(tx) || []), custodian.address]);
      }
    } catch (error) {
      unavailable.push(custodian.address);
    }
  }
  return { released, unavailable };
}
