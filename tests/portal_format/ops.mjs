// The ops the format tests drive, shared by the Node harness (harness.mjs) and the browser page
// (browser.mjs, bundled by esbuild): runOps({ops}) -> results, one per op: the outputs (bytes as hex)
// or {"error", "message"}. Bytes in ops are hex without 0x; uint64 values are decimal strings.

import * as format from "../../portal/src/format.js";

const hex = (bytes) => format.bytesToHex(bytes);
const bytes = (text) => format.hexToBytes(text ?? "");

function binding(b) {
  return { recordId: bytes(b.record_id), version: b.version, patient: b.patient, scope: b.scope, author: b.author };
}

function plainBinding(b) {
  return b === null ? null : { record_id: hex(b.recordId), version: String(b.version), patient: b.patient,
    scope: String(b.scope), author: b.author };
}

function secrets(map) {
  return new Map(Object.entries(map).map(([v, s]) => [Number(v), bytes(s)]));
}

const ops = {
  async unwrap(op) {
    return { data_key: hex(await format.unwrapDataKey(bytes(op.wrapped), bytes(op.secret), bytes(op.associated_data))) };
  },
  async wrap(op) {
    return { wrapped: hex(await format.wrapDataKey(bytes(op.data_key), bytes(op.public), bytes(op.associated_data))) };
  },
  async public_key(op) {
    return { public: hex(format.x25519PublicKey(bytes(op.secret))) };
  },
  async associated_data(op) {
    return { associated_data: hex(format.bindingAssociatedData(binding(op.binding))) };
  },
  async decrypt_envelope(op) {
    const header = format.parseEnvelopeHeader(bytes(op.envelope));
    const plaintext = await format.decryptEnvelope(bytes(op.envelope), bytes(op.data_key), bytes(op.associated_data));
    return { plaintext: hex(plaintext), chunk_size: header.chunkSize };
  },
  async encrypt_envelope(op) {
    return { envelope: hex(await format.encryptEnvelope(bytes(op.plaintext), bytes(op.data_key),
      bytes(op.associated_data), { chunkSize: op.chunk_size })) };
  },
  async parse_package(op) {
    const p = format.parsePackage(bytes(op.package));
    return { format: p.format, version: String(p.version), media_type: p.mediaType, binding: plainBinding(p.binding),
      wraps: p.wraps.map((w) => ({ reader: w.reader, key_version: w.keyVersion, wrapped: hex(w.wrapped) })),
      umbral: p.umbral && { key_version: p.umbral.keyVersion, capsule: hex(p.umbral.capsule),
        ciphertext: hex(p.umbral.ciphertext) },
      header_length: p.headerLength, envelope_length: p.envelope.length };
  },
  async open_package(op) {
    const expected = { ...op.expected, recordId: op.expected.record_id, contentHash: op.expected.content_hash };
    const opened = await format.openPackage(bytes(op.package), { reader: op.reader, x25519Secrets: secrets(op.x25519_secrets),
      expected, dataKey: op.data_key === undefined ? undefined : bytes(op.data_key),
      unsafeSkipContentHash: op.expected.content_hash === undefined });
    return { plaintext: hex(opened.plaintext), data_key: hex(opened.dataKey), media_type: opened.mediaType,
      version: String(opened.version), binding: plainBinding(opened.binding) };
  },
  async open_package_requiring_hash(op) {
    // openPackage as an app calls it, without the test-only opt-out: no contentHash must be refused
    const expected = { ...op.expected, recordId: op.expected.record_id, contentHash: op.expected.content_hash };
    await format.openPackage(bytes(op.package), { reader: op.reader, x25519Secrets: secrets(op.x25519_secrets), expected });
    return {};
  },
  async seal(op) {
    const ad = format.fragmentAssociatedData(op.custodian, op.record_id, op.grantee);
    return { sealed: hex(await format.sealPayload(bytes(op.payload), bytes(op.public), ad)), associated_data: hex(ad) };
  },
  async open_sealed(op) {
    return { payload: hex(await format.openSealedPayload(bytes(op.sealed), bytes(op.secret), bytes(op.associated_data))) };
  },
  async umbral_prefix(op) {
    const prefix = format.umbralPlaintextPrefix(binding(op.binding));
    return { prefix: hex(prefix), plaintext: hex(format.makeUmbralPlaintext(binding(op.binding), bytes(op.data_key))) };
  },
  async build_package(op) {
    const b = binding(op.binding);
    const ad = format.bindingAssociatedData(b);
    const dataKey = bytes(op.data_key);
    const wraps = [];
    for (const r of op.readers) {
      wraps.push({ reader: r.address, keyVersion: r.key_version, wrapped: await format.wrapDataKey(dataKey, bytes(r.public), ad) });
    }
    const header = format.buildPackageHeader({ version: b.version, mediaType: op.media_type, wraps, binding: b,
      umbral: op.umbral ? { keyVersion: op.umbral.key_version, capsule: bytes(op.umbral.capsule),
        ciphertext: bytes(op.umbral.ciphertext) } : null });
    const envelope = await format.encryptEnvelope(bytes(op.plaintext), dataKey, ad, { chunkSize: op.chunk_size });
    return { package: hex(format.concatBytes(header, envelope)) };
  },
  async make_keyshare(op) {
    const share = await format.makeKeyShare({ patient: op.patient, grantee: op.grantee,
      recipientX25519Public: bytes(op.public), keyVersion: op.key_version, grantedScopes: op.granted_scopes,
      entries: op.entries.map((e) => ({ binding: binding(e.binding), dataKey: bytes(e.data_key) })) });
    return { share: new TextDecoder().decode(share) };
  },
  async parse_keyshare(op) {
    const s = format.parseKeyShare(bytes(op.share_hex));
    return { patient: s.patient, grantee: s.grantee, entries: s.entries.map((e) => ({ record_id: hex(e.recordId),
      version: String(e.version), key_version: e.keyVersion, wrapped: hex(e.wrapped) })) };
  },
  async share_data_key(op) {
    const s = format.parseKeyShare(bytes(op.share_hex));
    const key = await format.dataKeyFromShare(s, { reader: op.reader, x25519Secrets: secrets(op.x25519_secrets),
      binding: binding(op.binding) });
    return { data_key: hex(key) };
  },
};

async function run(op) {
  try {
    const handler = ops[op.op];
    if (!handler) throw new Error(`unknown op ${op.op}`);
    return { ok: true, ...(await handler(op)) };
  } catch (err) {
    const known = err instanceof format.FormatBaseError;
    return { ok: false, error: known ? err.name : `untyped ${err.name}`, message: err.message };
  }
}

export async function runOps(list) {
  const results = [];
  for (const op of list) results.push(await run(op));
  return results;
}
