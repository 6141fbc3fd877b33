// The byte formats ehr_client writes, read and written in the browser and in Node (tested on 20; Node 18
// has no global WebCrypto without --experimental-global-webcrypto).
//
// One format, two implementations: this module matches ehr_client/package.py,
// ehr_client/crypto/{_format,stream,wrap,record}.py and ehr_client/keyshare.py byte for byte.
// docs/FORMAT.md is the specification; tests/vectors/format/*.json are test vectors made by the
// Python code, and tests/portal_format/ checks both directions.
//
// Conventions: bytes are Uint8Array; addresses are returned 0x-checksummed; uint64 fields (record
// version, scope) are returned as BigInt and accepted as number or BigInt; uint32/uint8 fields
// (key version, format) are numbers. AES-GCM and HKDF-SHA256 come from WebCrypto
// (globalThis.crypto.subtle, a secure context in browsers); X25519 from @noble/curves and
// Keccak-256 (address checksums) from @noble/hashes. Every function that uses WebCrypto is async.
//
// Errors are typed (all extend FormatBaseError): FormatError for malformed bytes, IntegrityError when
// the bytes are not the ones anchored on chain, BindingError when the package names another record
// identity than the chain (or none), KeyNotFoundError when no key
// for this reader is present, DecryptionError (opaque, like the Python side) for everything a wrong
// key or altered bytes cause. A function that throws returns no plaintext at all, never a part.
//
// The interface the portal uses (bindings are {recordId, version, patient, scope, author}):
//   parsePackage(bytes) -> {format, version, mediaType, binding|null, wraps: [{reader, keyVersion, wrapped}],
//                           umbral: {keyVersion, capsule, ciphertext}|null, headerLength, envelope}
//   await openPackage(bytes, {reader, x25519Secrets: Map<keyVersion, secret>, dataKey?,
//                             expected: {recordId, patient, scope, author, contentHash, version?}})
//       -> {plaintext, dataKey, mediaType, binding, version}      expected = what the chain lists
//   await wrapDataKey(dataKey, recipientX25519Public, bindingAssociatedData(binding)) -> 93 bytes
//   await unwrapDataKey(wrapped, recipientX25519Secret, associatedData) -> data key
//   parseKeyShare(bytes) -> {format, patient, grantee, entries: [{recordId, version, keyVersion, wrapped}]}
//   await makeKeyShare({patient, grantee, recipientX25519Public, keyVersion, entries: [{binding, dataKey}],
//                       grantedScopes}) -> bytes      (refuses an entry whose scope is not within grantedScopes)
//   await dataKeyFromShare(share, {reader, x25519Secrets, binding}) -> data key
//   await sealPayload(payload, custodianX25519Public, fragmentAssociatedData(custodian, recordId, grantee))
//   makeUmbralPlaintext(binding, dataKey) / dataKeyFromUmbralPlaintext(plaintext, binding)   (for umbral.js)
//   encryptEnvelope / decryptEnvelope / buildPackageHeader: writing a package (key rotation in the browser)

import { x25519 } from "@noble/curves/ed25519.js";
import { keccak_256 } from "@noble/hashes/sha3.js";

// ---------------------------------------------------------------------------------------------
// Constants (names follow the Python modules)

export const PACKAGE_MAGIC = bytesOf("EHRP");
export const PACKAGE_FORMAT = 1; // unbound, no Umbral section (parsed, refused when opened)
export const PACKAGE_FORMAT_UMBRAL = 2; // unbound, with Umbral section (parsed, refused when opened)
export const PACKAGE_FORMAT_BOUND = 3; // binding, no Umbral section (written by ehr_client)
export const PACKAGE_FORMAT_BOUND_UMBRAL = 4; // binding and Umbral section (written by ehr_client)
export const MAX_WRAPS = 32;
export const MAX_UMBRAL_FIELD = 1024;
export const BINDING_SIZE = 32 + 20 + 8 + 20;
export const WRAP_ENTRY_SIZE = 20 + 4 + 93;

export const ENVELOPE_MAGIC = bytesOf("EHRE");
export const ENVELOPE_VERSION = 1;
export const ENVELOPE_HEADER_SIZE = 48;
export const TAG_SIZE = 16;
export const NONCE_PREFIX_SIZE = 7;
export const KEY_COMMITMENT_SIZE = 32;
export const RECORD_ID_SIZE = 32;
export const DATA_KEY_SIZE = 32;
export const MIN_CHUNK_SIZE = 64;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const MAX_CHUNKS = 2 ** 32;
export const STREAM_KDF_LABEL = bytesOf("ehr_client/stream/v1");

export const WRAP_FORMAT_VERSION = 1;
export const WRAPPED_KEY_SIZE = 1 + 32 + 12 + DATA_KEY_SIZE + TAG_SIZE; // 93
export const WRAP_KDF_LABEL = bytesOf("ehr_client/wrap/v1");

export const UMBRAL_BINDING_LABEL = bytesOf("ehr-umbral-data-key/v1");
export const FRAGMENT_LABEL = bytesOf("ehr-custodian-fragment/v1");
export const SEAL_OVERHEAD = WRAPPED_KEY_SIZE + 12 + TAG_SIZE; // 121

export const KEYSHARE_FORMAT = "ehr-keyshare/1";
export const KEYSHARE_MAX_ENTRIES = 100_000;
export const KEYSHARE_MAX_BYTES = 64 * 1024 * 1024;
export const KEYSHARE_MAX_DEPTH = 4;

const U64_LIMIT = 1n << 64n;
const U32_LIMIT = 2 ** 32;

// ---------------------------------------------------------------------------------------------
// Errors

/** Root of every error this module throws on purpose. */
export class FormatBaseError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The bytes are not a well-formed package, envelope, wrapped key or key share. */
export class FormatError extends FormatBaseError {}

/** The package names another record identity than the chain lists, or none (formats 1 and 2). */
export class BindingError extends FormatBaseError {}

/** The stored bytes are not the ones the chain anchored (sha256 differs): altered or replaced. */
export class IntegrityError extends FormatBaseError {}

/** No key for this reader: no wrap in the package, or no entry for the record in a key share. */
export class KeyNotFoundError extends FormatBaseError {}

/** Deliberately opaque, like ehr_client.errors.DecryptionError: wrong key, other record, altered bytes. */
export class DecryptionError extends FormatBaseError {
  constructor(message = "the data could not be decrypted: wrong key, another record's data, or altered bytes") {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Small byte helpers

function bytesOf(ascii) {
  return new TextEncoder().encode(ascii);
}

function subtle() {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) {
    throw new FormatBaseError(
      "WebCrypto (crypto.subtle) is not available: serve the portal from http://127.0.0.1 or https, not a file or about:blank",
    );
  }
  return s;
}

function randomBytes(n) {
  const out = new Uint8Array(n);
  globalThis.crypto.getRandomValues(out);
  return out;
}

export function concatBytes(...parts) {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function asBytes(value, what, length) {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw new TypeError(`${what} must be ${length} bytes, got ${value.length}`);
  }
  return value;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function u16be(n) {
  return new Uint8Array([(n >>> 8) & 0xff, n & 0xff]);
}

function u32be(n) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

function u64be(n) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), false);
  return out;
}

/** A uint64 given as a BigInt, a safe-integer number or a string of decimal digits. */
function toU64(value, what) {
  const ok = typeof value === "bigint" || (typeof value === "number" && Number.isSafeInteger(value))
    || (typeof value === "string" && /^[0-9]{1,20}$/.test(value));
  const v = ok ? BigInt(value) : -1n;
  if (v < 0n || v >= U64_LIMIT) throw new TypeError(`${what} must be an integer from 0 to 2**64 - 1`);
  return v;
}

function toU32(value, what) {
  if (!Number.isInteger(value) || value < 0 || value >= U32_LIMIT) {
    throw new TypeError(`${what} must be an integer from 0 to 2**32 - 1`);
  }
  return value;
}

export function bytesToHex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function hexToBytes(hex) {
  const body = hex.startsWith("0x") || hex.startsWith("0X") ? hex.slice(2) : hex;
  if (body.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(body)) throw new TypeError("not a hex string");
  const out = new Uint8Array(body.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(body.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** EIP-55 checksum spelling of 20 address bytes. */
export function checksumAddress(addressBytes) {
  const lower = bytesToHex(asBytes(addressBytes, "an address", 20));
  const hash = keccak_256(bytesOf(lower));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const nibble = (hash[i >> 1] >> (i % 2 === 0 ? 4 : 0)) & 0x0f;
    out += nibble >= 8 ? lower[i].toUpperCase() : lower[i];
  }
  return out;
}

/**
 * The 20 bytes of an address given as hex text (40 hex digits, "0x" optional, any letter case:
 * the same set eth_utils.is_address accepts for text) or as 20 bytes.
 */
export function addressBytes(address, what = "an address") {
  if (address instanceof Uint8Array) return asBytes(address, what, 20);
  if (typeof address !== "string" || !/^(0x)?[0-9a-f]{40}$/i.test(address)) {
    throw new TypeError(`${what} must be 40 hex digits (0x-prefixed), got ${JSON.stringify(String(address))}`);
  }
  return hexToBytes(address.length === 42 ? address.slice(2) : address);
}

function normalAddress(address, what) {
  return checksumAddress(addressBytes(address, what));
}

// ---------------------------------------------------------------------------------------------
// Associated data and bindings

/**
 * A binding in canonical form: {recordId: Uint8Array(32), version: BigInt, patient, scope: BigInt, author}
 * with checksummed addresses. `recordId` may be given as bytes or 0x-hex.
 */
export function normalBinding(binding) {
  if (!binding || typeof binding !== "object") throw new TypeError("a binding must be an object");
  const recordId =
    typeof binding.recordId === "string" ? hexToBytes(binding.recordId) : binding.recordId;
  asBytes(recordId, "a record id (the on-chain bytes32)", RECORD_ID_SIZE);
  return {
    recordId: Uint8Array.from(recordId),
    version: toU64(binding.version, "a record version"),
    patient: normalAddress(binding.patient, "the patient"),
    scope: toU64(binding.scope, "a scope"),
    author: normalAddress(binding.author, "the author"),
  };
}

/** patient (20) || scope (uint64 BE) || author (20): what a binding adds to record id and version. */
export function bindingContext(binding) {
  const b = normalBinding(binding);
  return concatBytes(addressBytes(b.patient), u64be(b.scope), addressBytes(b.author));
}

/** record id (32) || version (uint64 BE) || context: `record_associated_data` in ehr_client.crypto._format. */
export function recordAssociatedData(recordId, version, context = new Uint8Array(0)) {
  asBytes(recordId, "a record id (the on-chain bytes32)", RECORD_ID_SIZE);
  return concatBytes(recordId, u64be(toU64(version, "a record version")), asBytes(context, "context"));
}

/** The 88 bytes that bind a wrapped key and an envelope to one record version (RecordBinding.associated_data). */
export function bindingAssociatedData(binding) {
  const b = normalBinding(binding);
  return recordAssociatedData(b.recordId, b.version, bindingContext(b));
}

function sameBinding(a, b) {
  return (
    equalBytes(a.recordId, b.recordId) &&
    a.version === b.version &&
    a.patient === b.patient &&
    a.scope === b.scope &&
    a.author === b.author
  );
}

// ---------------------------------------------------------------------------------------------
// HKDF-SHA256 and AES-256-GCM through WebCrypto

async function hkdfSha256(ikm, info, length) {
  const s = subtle();
  const key = await s.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  // salt absent in RFC 5869 = HashLen zero bytes; HMAC pads an empty key with zeros, so empty is the same.
  const bits = await s.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info }, key, length * 8);
  return new Uint8Array(bits);
}

async function aesKey(raw, usage) {
  return subtle().importKey("raw", raw, { name: "AES-GCM" }, false, [usage]);
}

async function aesSeal(key, nonce, plaintext, associatedData) {
  return new Uint8Array(
    await subtle().encrypt({ name: "AES-GCM", iv: nonce, additionalData: associatedData, tagLength: 128 }, key, plaintext),
  );
}

async function aesOpen(key, nonce, ciphertext, associatedData) {
  try {
    return new Uint8Array(
      await subtle().decrypt({ name: "AES-GCM", iv: nonce, additionalData: associatedData, tagLength: 128 }, key, ciphertext),
    );
  } catch {
    throw new DecryptionError();
  }
}

// ---------------------------------------------------------------------------------------------
// Key wrap: X25519 + HKDF-SHA256 + AES-256-GCM (ehr_client/crypto/wrap.py)

/** The raw X25519 public key of a raw 32-byte secret (the secret is clamped, as RFC 7748 says). */
export function x25519PublicKey(secret) {
  return x25519.getPublicKey(asBytes(secret, "an X25519 secret key", 32));
}

async function keyEncryptionKey(shared, recipientPublic, ephemeralPublic, usage) {
  const kek = await hkdfSha256(shared, concatBytes(WRAP_KDF_LABEL, recipientPublic, ephemeralPublic), 32);
  try {
    return await aesKey(kek, usage);
  } finally {
    kek.fill(0);
  }
}

/**
 * Seal a 32-byte data key to one recipient's X25519 public key: 93 bytes,
 * version 1 | ephemeral public (32) | nonce (12) | AES-256-GCM(data key) + tag (48).
 * `associatedData` should be bindingAssociatedData(binding). Fresh ephemeral key and nonce per call.
 */
export async function wrapDataKey(dataKey, recipientX25519Public, associatedData) {
  asBytes(dataKey, "a data key", DATA_KEY_SIZE);
  asBytes(associatedData, "the associated data");
  const unusable = "the recipient public key is not a usable 32-byte X25519 key: fetch it again from the key registry";
  if (!(recipientX25519Public instanceof Uint8Array) || recipientX25519Public.length !== 32) throw new TypeError(unusable);
  const ephemeral = x25519.utils.randomSecretKey();
  let shared;
  try {
    shared = x25519.getSharedSecret(ephemeral, recipientX25519Public);
  } catch {
    throw new TypeError(unusable);
  }
  const ephemeralPublic = x25519.getPublicKey(ephemeral);
  ephemeral.fill(0);
  const header = concatBytes(new Uint8Array([WRAP_FORMAT_VERSION]), ephemeralPublic, randomBytes(12));
  const kek = await keyEncryptionKey(shared, recipientX25519Public, ephemeralPublic, "encrypt");
  shared.fill(0);
  const sealed = await aesSeal(kek, header.subarray(33), dataKey, concatBytes(header, associatedData));
  return concatBytes(header, sealed);
}

/** The data key from a 93-byte wrapped key and the recipient's raw X25519 secret; any failure: DecryptionError. */
export async function unwrapDataKey(wrapped, recipientX25519Secret, associatedData) {
  asBytes(associatedData, "the associated data");
  if (!(wrapped instanceof Uint8Array) || wrapped.length !== WRAPPED_KEY_SIZE || wrapped[0] !== WRAP_FORMAT_VERSION) {
    throw new DecryptionError();
  }
  if (!(recipientX25519Secret instanceof Uint8Array) || recipientX25519Secret.length !== 32) throw new DecryptionError();
  const ephemeralPublic = wrapped.subarray(1, 33);
  let shared;
  let ownPublic;
  try {
    ownPublic = x25519.getPublicKey(recipientX25519Secret);
    shared = x25519.getSharedSecret(recipientX25519Secret, ephemeralPublic);
  } catch {
    throw new DecryptionError();
  }
  const kek = await keyEncryptionKey(shared, ownPublic, ephemeralPublic, "decrypt");
  shared.fill(0);
  return aesOpen(kek, wrapped.subarray(33, 45), wrapped.subarray(45), concatBytes(wrapped.subarray(0, 45), associatedData));
}

// ---------------------------------------------------------------------------------------------
// Envelope: chunked AES-256-GCM, STREAM nonces, key commitment (ehr_client/crypto/_format.py, stream.py)

/** Parse the 48-byte envelope header: {chunkSize, noncePrefix, keyCommitment}; anything else: FormatError. */
export function parseEnvelopeHeader(header) {
  if (!(header instanceof Uint8Array) || header.length < ENVELOPE_HEADER_SIZE) {
    throw new FormatError("the envelope is shorter than its 48-byte header: the stored data is truncated");
  }
  const view = new DataView(header.buffer, header.byteOffset, ENVELOPE_HEADER_SIZE);
  if (!equalBytes(header.subarray(0, 4), ENVELOPE_MAGIC)) throw new FormatError("not an EHR envelope (magic is not EHRE)");
  if (header[4] !== ENVELOPE_VERSION) {
    throw new FormatError(`envelope format version ${header[4]} is not supported (only 1): update the portal`);
  }
  const chunkSize = view.getUint32(5, false);
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new FormatError(`envelope chunk size ${chunkSize} is outside ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}`);
  }
  return {
    chunkSize,
    noncePrefix: header.slice(9, 16),
    keyCommitment: header.slice(16, 48),
  };
}

/** (AES key, key commitment) = HKDF-SHA256(data key, salt none, info "ehr_client/stream/v1" || prefix, 64) split 32/32. */
export async function deriveStreamKeys(dataKey, noncePrefix) {
  const okm = await hkdfSha256(dataKey, concatBytes(STREAM_KDF_LABEL, noncePrefix), 64);
  return { encryptionKey: okm.slice(0, 32), keyCommitment: okm.slice(32) };
}

/** prefix (7) || uint32 BE counter || final flag (1). */
export function chunkNonce(noncePrefix, counter, final) {
  return concatBytes(noncePrefix, u32be(counter), new Uint8Array([final ? 1 : 0]));
}

/**
 * Decrypt a whole envelope held in memory. `associatedData` is recordAssociatedData(...) (for a
 * package: bindingAssociatedData(binding)); each chunk's AD is header (48) || associatedData.
 * Returns the plaintext only when every chunk verified and the final chunk was present.
 */
export async function decryptEnvelope(envelope, dataKey, associatedData) {
  const header = parseEnvelopeHeader(envelope);
  asBytes(associatedData, "the associated data");
  if (!(dataKey instanceof Uint8Array) || dataKey.length !== DATA_KEY_SIZE) throw new DecryptionError();
  const { encryptionKey, keyCommitment } = await deriveStreamKeys(dataKey, header.noncePrefix);
  if (!equalBytes(keyCommitment, header.keyCommitment)) throw new DecryptionError();
  const key = await aesKey(encryptionKey, "decrypt");
  encryptionKey.fill(0);
  const ad = concatBytes(envelope.subarray(0, ENVELOPE_HEADER_SIZE), associatedData);
  const body = envelope.subarray(ENVELOPE_HEADER_SIZE);
  const frame = header.chunkSize + TAG_SIZE;
  const fullChunks = Math.floor(body.length / frame);
  const lastLength = body.length - fullChunks * frame; // the final chunk is the short one, maybe only a tag
  if (lastLength < TAG_SIZE || fullChunks + 1 > MAX_CHUNKS) throw new DecryptionError();
  const out = new Uint8Array(body.length - TAG_SIZE * (fullChunks + 1));
  try {
    for (let counter = 0; counter <= fullChunks; counter++) {
      const final = counter === fullChunks;
      const start = counter * frame;
      const sealed = body.subarray(start, final ? body.length : start + frame);
      const plain = await aesOpen(key, chunkNonce(header.noncePrefix, counter, final), sealed, ad);
      out.set(plain, counter * header.chunkSize);
      plain.fill(0);
    }
  } catch (err) {
    out.fill(0);
    throw err instanceof DecryptionError ? err : new DecryptionError();
  }
  return out;
}

/**
 * Encrypt `plaintext` as one envelope (the same bytes ehr_client's iter_encrypt writes, up to the
 * random nonce prefix): {envelope, sha256 is up to the caller}.
 */
export async function encryptEnvelope(plaintext, dataKey, associatedData, { chunkSize = DEFAULT_CHUNK_SIZE } = {}) {
  asBytes(plaintext, "the plaintext");
  asBytes(dataKey, "a data key", DATA_KEY_SIZE);
  asBytes(associatedData, "the associated data");
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new TypeError(`chunkSize must be an integer from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE} bytes`);
  }
  const fullChunks = Math.floor(plaintext.length / chunkSize);
  if (fullChunks + 1 > MAX_CHUNKS) throw new TypeError("the input is too large for this chunk size: pass a larger chunkSize");
  const noncePrefix = randomBytes(NONCE_PREFIX_SIZE);
  const { encryptionKey, keyCommitment } = await deriveStreamKeys(dataKey, noncePrefix);
  const key = await aesKey(encryptionKey, "encrypt");
  encryptionKey.fill(0);
  const header = concatBytes(ENVELOPE_MAGIC, new Uint8Array([ENVELOPE_VERSION]), u32be(chunkSize), noncePrefix, keyCommitment);
  const ad = concatBytes(header, associatedData);
  const parts = [header];
  for (let counter = 0; counter <= fullChunks; counter++) {
    const final = counter === fullChunks; // a full chunk is never final: an empty final chunk may follow
    const piece = plaintext.subarray(counter * chunkSize, final ? plaintext.length : (counter + 1) * chunkSize);
    parts.push(await aesSeal(key, chunkNonce(noncePrefix, counter, final), piece, ad));
  }
  return concatBytes(...parts);
}

// ---------------------------------------------------------------------------------------------
// Package: keyring header + envelope (ehr_client/package.py)

function truncated(what) {
  return new FormatError(`the package ends inside its ${what}: the stored data is truncated or not an EHR package`);
}

/**
 * Parse a package: {format, version (BigInt), mediaType, binding|null, wraps: [{reader, keyVersion, wrapped}],
 * umbral: {keyVersion, capsule, ciphertext}|null, headerLength, envelope}. Formats 1 and 2 (no binding)
 * parse; openPackage refuses them. Garbage: FormatError (Python raises its opaque DecryptionError).
 */
export function parsePackage(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("a package must be a Uint8Array");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  const need = (n, what) => {
    if (offset + n > bytes.length) throw truncated(what);
  };
  need(14, "fixed header");
  if (!equalBytes(bytes.subarray(0, 4), PACKAGE_MAGIC)) throw new FormatError("not an EHR package (magic is not EHRP)");
  const format = bytes[4];
  if (format < PACKAGE_FORMAT || format > PACKAGE_FORMAT_BOUND_UMBRAL) {
    throw new FormatError(`package format ${format} is not known (1 to 4): update the portal`);
  }
  const version = view.getBigUint64(5, false);
  const mediaLength = bytes[13];
  offset = 14;
  need(mediaLength, "media type");
  const media = bytes.subarray(offset, offset + mediaLength);
  if (media.some((b) => b > 0x7f)) throw new FormatError("the package's media type is not ASCII");
  const mediaType = String.fromCharCode(...media);
  offset += mediaLength;
  let binding = null;
  if (format === PACKAGE_FORMAT_BOUND || format === PACKAGE_FORMAT_BOUND_UMBRAL) {
    need(BINDING_SIZE, "record binding");
    binding = {
      recordId: bytes.slice(offset, offset + 32),
      version,
      patient: checksumAddress(bytes.subarray(offset + 32, offset + 52)),
      scope: view.getBigUint64(offset + 52, false),
      author: checksumAddress(bytes.subarray(offset + 60, offset + 80)),
    };
    offset += BINDING_SIZE;
  }
  need(1, "wrap count");
  const count = bytes[offset];
  offset += 1;
  const wraps = [];
  for (let i = 0; i < count; i++) {
    need(WRAP_ENTRY_SIZE, "keyring");
    wraps.push({
      reader: checksumAddress(bytes.subarray(offset, offset + 20)),
      keyVersion: view.getUint32(offset + 20, false),
      wrapped: bytes.slice(offset + 24, offset + WRAP_ENTRY_SIZE),
    });
    offset += WRAP_ENTRY_SIZE;
  }
  let umbral = null;
  if (format === PACKAGE_FORMAT_UMBRAL || format === PACKAGE_FORMAT_BOUND_UMBRAL) {
    need(4, "Umbral section");
    const keyVersion = view.getUint32(offset, false);
    offset += 4;
    const fields = [];
    for (const what of ["Umbral capsule", "Umbral ciphertext"]) {
      need(2, what);
      const length = view.getUint16(offset, false);
      offset += 2;
      if (length > MAX_UMBRAL_FIELD) throw new FormatError(`the package's ${what} is longer than ${MAX_UMBRAL_FIELD} bytes`);
      need(length, what);
      fields.push(bytes.slice(offset, offset + length));
      offset += length;
    }
    umbral = { keyVersion, capsule: fields[0], ciphertext: fields[1] };
  }
  return { format, version, mediaType, binding, wraps, umbral, headerLength: offset, envelope: bytes.subarray(offset) };
}

/**
 * Serialise a package header (PackageHeader.to_bytes): format 3 or 4 when `binding` is given
 * (its version must equal `version`), 1 or 2 without. Append the envelope to get the package.
 */
export function buildPackageHeader({ version, mediaType, wraps, umbral = null, binding = null }) {
  const v = toU64(version, "a record version");
  if (typeof mediaType !== "string" || !/^[\x00-\x7f]*$/.test(mediaType) || mediaType.length > 255) {
    throw new TypeError("the media type must be ASCII of at most 255 characters");
  }
  if (!Array.isArray(wraps) || wraps.length > MAX_WRAPS) throw new TypeError(`a package holds at most ${MAX_WRAPS} wraps`);
  const parts = [];
  let format;
  let bound = null;
  if (binding !== null) {
    bound = normalBinding(binding);
    if (bound.version !== v) throw new TypeError("the binding names another version than the header");
    format = umbral === null ? PACKAGE_FORMAT_BOUND : PACKAGE_FORMAT_BOUND_UMBRAL;
  } else {
    format = umbral === null ? PACKAGE_FORMAT : PACKAGE_FORMAT_UMBRAL;
  }
  parts.push(PACKAGE_MAGIC, new Uint8Array([format]), u64be(v), new Uint8Array([mediaType.length]), bytesOf(mediaType));
  if (bound !== null) {
    parts.push(bound.recordId, addressBytes(bound.patient), u64be(bound.scope), addressBytes(bound.author));
  }
  parts.push(new Uint8Array([wraps.length]));
  for (const w of wraps) {
    parts.push(addressBytes(w.reader, "a wrap's reader"), u32be(toU32(w.keyVersion, "a key version")),
      asBytes(w.wrapped, "a wrapped key", WRAPPED_KEY_SIZE));
  }
  if (umbral !== null) {
    const { capsule, ciphertext } = umbral;
    asBytes(capsule, "the Umbral capsule");
    asBytes(ciphertext, "the Umbral ciphertext");
    if (capsule.length > MAX_UMBRAL_FIELD || ciphertext.length > MAX_UMBRAL_FIELD) {
      throw new TypeError("Umbral capsule or ciphertext too long");
    }
    parts.push(u32be(toU32(umbral.keyVersion, "the Umbral key version")), u16be(capsule.length), capsule,
      u16be(ciphertext.length), ciphertext);
  }
  return concatBytes(...parts);
}

/**
 * Compare the package's binding with what the chain says (`expected`: {recordId, patient, scope,
 * author} and optionally version). Formats 1 and 2 carry none and are refused, as ehr_client does.
 */
export function checkBinding(parsed, expected) {
  if (parsed.binding === null) {
    throw new BindingError(
      "the stored data carries no record identity (package format 1 or 2); it was not written by a current client and is refused",
    );
  }
  if (!expected) throw new TypeError("pass the binding the chain lists for this record (expected)");
  const want = normalBinding({ recordId: expected.recordId, patient: expected.patient, scope: expected.scope,
    author: expected.author, version: expected.version ?? parsed.version });
  if (!sameBinding(parsed.binding, want)) {
    throw new BindingError(
      "the stored data was written for another record, version, patient, scope or author than the chain lists: it was re-listed, so nothing was decrypted",
    );
  }
  return parsed.binding;
}

function secretsInOrder(x25519Secrets, labelled) {
  const entries = x25519Secrets instanceof Map ? [...x25519Secrets.entries()] : Object.entries(x25519Secrets ?? {});
  const versions = entries.map(([v, s]) => [Number(v), s]);
  const first = versions.filter(([v]) => v === labelled).map(([, s]) => s);
  const rest = versions.filter(([v]) => v !== labelled).sort((a, b) => b[0] - a[0]).map(([, s]) => s);
  return [...first, ...rest];
}

/** A key sealed to this reader, tried with the labelled key version first, then the others newest first. */
export async function openSealed(wrapped, keyVersion, x25519Secrets, associatedData) {
  for (const secret of secretsInOrder(x25519Secrets, keyVersion)) {
    try {
      return await unwrapDataKey(wrapped, secret, associatedData);
    } catch (err) {
      if (!(err instanceof DecryptionError)) throw err;
    }
  }
  throw new DecryptionError();
}

/** sha256 of `bytes` (WebCrypto). */
export async function sha256(bytes) {
  return new Uint8Array(await subtle().digest("SHA-256", asBytes(bytes, "the data")));
}

/** Throw IntegrityError unless sha256(bytes) is the hash the chain anchored (bytes or hex). */
export async function checkContentHash(bytes, contentHash) {
  const want = typeof contentHash === "string" ? hexToBytes(contentHash) : asBytes(contentHash, "the content hash", 32);
  if (!equalBytes(await sha256(bytes), want)) {
    throw new IntegrityError(
      "the stored data does not match the hash anchored on chain; it was altered or replaced: nothing was decrypted",
    );
  }
}

/**
 * Open a package as `reader`. `expected` is what the chain lists for the record: {recordId, patient,
 * scope, author, contentHash (the anchored sha256), version (optional)}. In order: the sha256 must be
 * the anchored one (IntegrityError), the header's binding the chain's (BindingError), the data key
 * comes from the reader's wrap (`x25519Secrets`: Map keyVersion -> secret) or from `dataKey` when the
 * caller has it (e.g. dataKeyFromShare), then the envelope is decrypted.
 * Returns {plaintext, dataKey, mediaType, binding, version}.
 *
 * The anchored hash is required: anyone can wrap a key of their choosing to the reader's public key
 * with the (public) binding AD and encrypt a plaintext of their choosing, so without the hash a
 * substituted package with the right binding would open to the substitute. `unsafeSkipContentHash`
 * skips the check, for format tests only.
 */
export async function openPackage(bytes, { reader, x25519Secrets, expected, dataKey, unsafeSkipContentHash = false } = {}) {
  if (!expected) throw new TypeError("pass the record's facts from the chain (expected: recordId, patient, scope, author, contentHash)");
  if (!unsafeSkipContentHash) {
    if (expected.contentHash === undefined || expected.contentHash === null) {
      throw new TypeError("pass expected.contentHash, the sha256 the chain anchored for this record");
    }
    await checkContentHash(bytes, expected.contentHash);
  }
  const parsed = parsePackage(bytes);
  const binding = checkBinding(parsed, expected);
  const ad = bindingAssociatedData(binding);
  let key = dataKey;
  if (key === undefined) {
    const me = normalAddress(reader, "the reader");
    const wrap = parsed.wraps.find((w) => w.reader === me);
    if (!wrap) {
      throw new KeyNotFoundError(
        `the record was not sealed to ${me} when written; the data key must come from a key share or the custodians`,
      );
    }
    key = await openSealed(wrap.wrapped, wrap.keyVersion, x25519Secrets, ad);
  }
  const plaintext = await decryptEnvelope(parsed.envelope, key, ad);
  return { plaintext, dataKey: key, mediaType: parsed.mediaType, binding, version: parsed.version };
}

// ---------------------------------------------------------------------------------------------
// Sealed payloads (ehr_client/custodian/seal.py): key fragments sealed to a custodian

/** "ehr-custodian-fragment/v1" || custodian (20) || record id (32) || grantee (20). */
export function fragmentAssociatedData(custodian, recordId, grantee) {
  return concatBytes(FRAGMENT_LABEL, addressBytes(custodian, "the custodian"),
    asBytes(typeof recordId === "string" ? hexToBytes(recordId) : recordId, "a record id", RECORD_ID_SIZE),
    addressBytes(grantee, "the grantee"));
}

/**
 * seal(): wrapped key (93, a fresh AES key wrapped to `recipientX25519Public` with `associatedData`)
 * || nonce (12) || AES-256-GCM(payload) with AD = wrapped key || associatedData.
 */
export async function sealPayload(payload, recipientX25519Public, associatedData) {
  asBytes(payload, "the payload");
  const key = randomBytes(DATA_KEY_SIZE);
  try {
    const wrapped = await wrapDataKey(key, recipientX25519Public, associatedData);
    const nonce = randomBytes(12);
    const body = await aesSeal(await aesKey(key, "encrypt"), nonce, payload, concatBytes(wrapped, associatedData));
    return concatBytes(wrapped, nonce, body);
  } finally {
    key.fill(0);
  }
}

/** The payload of sealPayload / Python's seal; any failure: DecryptionError. */
export async function openSealedPayload(sealed, recipientX25519Secret, associatedData) {
  if (!(sealed instanceof Uint8Array) || sealed.length < SEAL_OVERHEAD) throw new DecryptionError();
  const wrapped = sealed.subarray(0, WRAPPED_KEY_SIZE);
  const key = await unwrapDataKey(wrapped, recipientX25519Secret, associatedData);
  const aes = await aesKey(key, "decrypt");
  key.fill(0);
  return aesOpen(aes, sealed.subarray(WRAPPED_KEY_SIZE, WRAPPED_KEY_SIZE + 12), sealed.subarray(WRAPPED_KEY_SIZE + 12),
    concatBytes(wrapped, associatedData));
}

// ---------------------------------------------------------------------------------------------
// Umbral section plaintext (the Umbral encryption itself is in portal/src/umbral.js)

/** "ehr-umbral-data-key/v1" || record id || uint64 BE version || context: what precedes the data key. */
export function umbralPlaintextPrefix(binding) {
  const b = normalBinding(binding);
  return concatBytes(UMBRAL_BINDING_LABEL, b.recordId, u64be(b.version), bindingContext(b));
}

/** The plaintext to Umbral-encrypt for a package's Umbral section. */
export function makeUmbralPlaintext(binding, dataKey) {
  return concatBytes(umbralPlaintextPrefix(binding), asBytes(dataKey, "a data key", DATA_KEY_SIZE));
}

/** The data key from a decrypted Umbral plaintext, only if it names this record version; else DecryptionError. */
export function dataKeyFromUmbralPlaintext(plaintext, binding) {
  const prefix = umbralPlaintextPrefix(binding);
  if (!(plaintext instanceof Uint8Array) || plaintext.length !== prefix.length + DATA_KEY_SIZE
    || !equalBytes(plaintext.subarray(0, prefix.length), prefix)) {
    throw new DecryptionError();
  }
  return plaintext.slice(prefix.length);
}

// ---------------------------------------------------------------------------------------------
// Key shares (ehr_client/keyshare.py): canonical JSON, one wrapped key per record version

function jsonDepthWithin(text, maxDepth) {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "[" || c === "{") {
      if (++depth > maxDepth) return false;
    } else if (c === "]" || c === "}") depth--;
  }
  return true;
}

/** Hex as KeyShare.from_bytes reads it: an optional lower-case "0x", then hex digits (no spaces). */
function shareHex(value) {
  const text = String(value);
  const body = text.startsWith("0x") ? text.slice(2) : text;
  if (body.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(body)) throw new TypeError("not hex");
  return hexToBytes(body);
}

function shareError(detail) {
  return new FormatError(`the key share is malformed (${detail}); ask the patient to share the keys again`);
}

/**
 * Parse an untrusted key share: {format, patient, grantee, entries: [{recordId, version (BigInt),
 * keyVersion, wrapped}]}; anything malformed: FormatError (Python: InvalidRecord).
 */
export function parseKeyShare(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("a key share must be a Uint8Array");
  if (bytes.length > KEYSHARE_MAX_BYTES) throw shareError(`larger than ${KEYSHARE_MAX_BYTES} bytes`);
  let doc;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    if (!jsonDepthWithin(text, KEYSHARE_MAX_DEPTH)) throw new Error("nested too deep");
    doc = JSON.parse(text);
  } catch {
    throw shareError("not JSON, or nested deeper than 4 levels");
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc) || doc.format !== KEYSHARE_FORMAT) {
    throw shareError(`not a ${KEYSHARE_FORMAT} document`);
  }
  let patient;
  let grantee;
  try {
    patient = normalAddress(doc.patient, "patient");
    grantee = normalAddress(doc.grantee, "grantee");
  } catch {
    throw shareError("patient or grantee is not an address");
  }
  if (!Array.isArray(doc.entries) || doc.entries.length > KEYSHARE_MAX_ENTRIES) {
    throw shareError(`entries must be a list of at most ${KEYSHARE_MAX_ENTRIES}`);
  }
  const entries = doc.entries.map((item, i) => {
    if (!item || typeof item !== "object" || Array.isArray(item)) throw shareError(`entry ${i} is not an object`);
    const { record, version, keyVersion, wrapped } = item;
    let recordId;
    let wrappedBytes;
    try {
      recordId = shareHex(record);
      wrappedBytes = shareHex(wrapped);
    } catch {
      throw shareError(`entry ${i}: record or wrapped is not hex`);
    }
    if (recordId.length !== RECORD_ID_SIZE || wrappedBytes.length !== WRAPPED_KEY_SIZE) {
      throw shareError(`entry ${i}: record must be 32 bytes and wrapped ${WRAPPED_KEY_SIZE}`);
    }
    if (!Number.isSafeInteger(version) || version < 1 || !Number.isSafeInteger(keyVersion) || keyVersion < 1
      || keyVersion >= U32_LIMIT) {
      throw shareError(`entry ${i}: version and keyVersion must be integers of at least 1`);
    }
    return { recordId, version: BigInt(version), keyVersion, wrapped: wrappedBytes };
  });
  return { format: KEYSHARE_FORMAT, patient, grantee, entries };
}

/**
 * Make a key share (KeyShare.to_bytes, byte for byte): the data key of each record version sealed
 * to the grantee's X25519 key `recipientX25519Public` (on-chain key version `keyVersion`), with
 * associated data from each entry's binding. `entries`: [{binding: {recordId, version, patient,
 * scope, author}, dataKey}]; every binding must name `patient`. With `grantedScopes` (the grant's
 * scope bits), an entry whose scope has a bit outside them is refused, as KeySharer.share skips it
 * (`scope & ~scopes`): a record in LAB|MENTAL is not shared by a LAB grant.
 */
export async function makeKeyShare({ patient, grantee, recipientX25519Public, keyVersion, entries, grantedScopes }) {
  const granted = grantedScopes === undefined ? null : toU64(grantedScopes, "the granted scopes");
  const owner = normalAddress(patient, "the patient");
  const to = normalAddress(grantee, "the grantee");
  toU32(keyVersion, "the grantee's key version");
  if (keyVersion < 1) throw new TypeError("the grantee's key version must be at least 1 (as published on chain)");
  if (!Array.isArray(entries) || entries.length > KEYSHARE_MAX_ENTRIES) {
    throw new TypeError(`entries must be an array of at most ${KEYSHARE_MAX_ENTRIES}`);
  }
  const out = [];
  for (const entry of entries) {
    const binding = normalBinding(entry.binding);
    if (binding.patient !== owner) throw new TypeError("every entry's binding must name the share's patient");
    if (granted !== null && (binding.scope & ~granted) !== 0n) {
      throw new TypeError(`record 0x${bytesToHex(binding.recordId)} has scope bits ${binding.scope} outside the granted ${granted}: `
        + "its key must not be shared by this grant");
    }
    if (binding.version < 1n || binding.version > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new TypeError("a shared record version must be from 1 to 2**53 - 1");
    }
    const wrapped = await wrapDataKey(entry.dataKey, recipientX25519Public, bindingAssociatedData(binding));
    // keys in sorted order, as Python's json.dumps(sort_keys=True)
    out.push({ keyVersion, record: "0x" + bytesToHex(binding.recordId), version: Number(binding.version),
      wrapped: "0x" + bytesToHex(wrapped) });
  }
  return bytesOf(JSON.stringify({ entries: out, format: KEYSHARE_FORMAT, grantee: to, patient: owner }));
}

/**
 * The data key for one record from a parsed key share (ShareIndex.data_key): the entry must exist,
 * the share must be for `reader` and the entry for the binding's version; then the wrap is opened
 * with associated data from `binding` (the chain's facts).
 */
export async function dataKeyFromShare(share, { reader, x25519Secrets, binding }) {
  const b = normalBinding(binding);
  const entry = share.entries.findLast((e) => equalBytes(e.recordId, b.recordId)); // a later duplicate wins, as in Python's dict
  if (!entry || share.grantee !== normalAddress(reader, "the reader") || entry.version !== b.version) {
    throw new KeyNotFoundError(`the key share does not cover record 0x${bytesToHex(b.recordId)} for ${normalAddress(reader)}`);
  }
  return openSealed(entry.wrapped, entry.keyVersion, x25519Secrets, bindingAssociatedData(b));
}
