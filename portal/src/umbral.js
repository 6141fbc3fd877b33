// Umbral proxy re-encryption in the browser: what the portal needs from @nucypher/umbral-pre 0.10.0
// (WASM), on bytes that Python's umbral-pre 0.11.0 (ehr_client) reads and writes unchanged.
//
// Checked by tests/portal_keys/test_umbral.py (SECURITY.md, "Umbral in the browser"): secret and
// public keys, capsules, key fragments and capsule fragments round-trip byte for byte between the
// two, in both directions; kfrags made here are verified, re-encrypted and decrypted by Python, and
// Python's capsules and cfrags are opened here. Use `toBytes()` forms only: `toBytesSimple()`
// (capsule, cfrag) has no counterpart in Python's `bytes()`.
//
// Loading: the package's "browser" build imports its .wasm as an ES module, which esbuild cannot
// bundle. This module therefore imports only the package's JS glue and instantiates the WASM itself
// from bytes or a URL the caller gives (the portal serves the .wasm from its own origin, next to
// the bundle; Node tests pass the file's bytes). A page's Content-Security-Policy must allow
// 'wasm-unsafe-eval' in script-src for WebAssembly to compile. Call `initUmbral` once, await it,
// then use the functions below. All bytes are Uint8Array.
import * as glue from "@nucypher/umbral-pre/pkg-bundler/umbral_pre_wasm_bg.js";

/** Where the .wasm file lives inside node_modules (serve it, or read it in Node). */
export const WASM_FILE = "@nucypher/umbral-pre/pkg-bundler/umbral_pre_wasm_bg.wasm";

/** Any Umbral failure: bad bytes, a fragment that fails verification, too few fragments. */
export class UmbralError extends Error {
  constructor(message) {
    super(message);
    this.name = "UmbralError";
  }
}

let ready = null;

/** Instantiate the WASM once. `source`: the .wasm bytes (Uint8Array/ArrayBuffer), a URL (string
 * or URL) fetched from the page's own origin, or a fetch Response. */
export function initUmbral(source) {
  if (ready === null) {
    ready = (async () => {
      const imports = { "./umbral_pre_wasm_bg.js": glue };
      let wasm = source;
      if (!(source instanceof Uint8Array || source instanceof ArrayBuffer)) {
        const response = typeof source === "string" || source instanceof URL ? await fetch(source) : await source;
        if (!response.ok) throw new UmbralError(`cannot load the Umbral WASM (${response.status} ${response.url})`);
        wasm = await response.arrayBuffer();
      }
      let instance;
      try {
        ({ instance } = await WebAssembly.instantiate(wasm, imports));
      } catch (error) {
        throw new UmbralError(`cannot compile the Umbral WASM (${error instanceof Error ? error.message : error}); ` +
          "the page's Content-Security-Policy must allow 'wasm-unsafe-eval' in script-src");
      }
      glue.__wbg_set_wasm(instance.exports);
      return glue;
    })();
    ready.catch(() => { ready = null; });  // a failed load may be retried
  }
  return ready;
}

function lib() {
  if (ready === null) throw new UmbralError("Umbral is not loaded: await initUmbral(...) first");
  return glue;
}

// wasm-bindgen objects hold WASM memory until freed: free every one we make.
function using(use) {
  const m = lib();
  const objects = [];
  const keep = (object) => { objects.push(object); return object; };
  try {
    return use(keep, m);
  } catch (error) {
    if (error instanceof UmbralError) throw error;
    throw new UmbralError(`Umbral refused the input: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    for (const object of objects) if (object.__wbg_ptr) object.free();  // consumed ones (verify) are 0
  }
}

/** Compressed SEC1 public key (33 bytes) of a 32-byte big-endian Umbral secret. */
export function publicKeyOf(secret) {
  return using((keep, m) => keep(keep(m.SecretKey.fromBEBytes(secret)).publicKey()).toCompressedBytes());
}

/** Encrypt to an Umbral public key: {capsule, ciphertext} (capsule in Python's `bytes(capsule)` form). */
export function encrypt(publicKey, plaintext) {
  return using((keep, m) => {
    const [capsule, ciphertext] = m.encrypt(keep(m.PublicKey.fromCompressedBytes(publicKey)), plaintext);
    keep(capsule);
    return { capsule: capsule.toBytes(), ciphertext };
  });
}

/** Decrypt with the owner's secret key (the patient opening their own Umbral-sealed key). */
export function decryptOriginal(secret, capsule, ciphertext) {
  return using((keep, m) => m.decryptOriginal(keep(m.SecretKey.fromBEBytes(secret)),
    keep(m.Capsule.fromBytes(capsule)), ciphertext));
}

/** Key fragments re-encrypting from `delegatingSecret` to `receivingPublic`, as ehr_client makes
 * them (sharing/audited.py): signed by the delegating key itself, over both public keys. */
export function generateKFrags({ delegatingSecret, receivingPublic, threshold, shares }) {
  if (!Number.isInteger(threshold) || !Number.isInteger(shares) || threshold < 1 || threshold > shares || shares > 255) {
    throw new UmbralError("need 1 <= threshold <= shares <= 255 key fragments");
  }
  return using((keep, m) => {
    const secret = keep(m.SecretKey.fromBEBytes(delegatingSecret));
    const kfrags = m.generateKFrags(secret, keep(m.PublicKey.fromCompressedBytes(receivingPublic)),
      keep(new m.Signer(secret)), threshold, shares, true, true);
    return kfrags.map((kfrag) => keep(kfrag).toBytes());
  });
}

/** Re-encrypt a capsule with a key fragment after verifying it (what a custodian does). */
export function reencrypt({ capsule, kfrag, verifyingPublic, delegatingPublic, receivingPublic }) {
  return using((keep, m) => {
    const pk = (bytes) => keep(m.PublicKey.fromCompressedBytes(bytes));
    const verified = keep(keep(m.KeyFrag.fromBytes(kfrag)).verify(pk(verifyingPublic), pk(delegatingPublic),
      pk(receivingPublic)));
    return keep(m.reencrypt(keep(m.Capsule.fromBytes(capsule)), verified)).toBytes();
  });
}

/** Open a capsule with verified capsule fragments (the grantee's side of an audited release). */
export function decryptReencrypted({ receivingSecret, delegatingPublic, verifyingPublic, capsule, cfrags, ciphertext }) {
  return using((keep, m) => {
    const secret = keep(m.SecretKey.fromBEBytes(receivingSecret));
    const receiving = keep(secret.publicKey());
    const delegating = keep(m.PublicKey.fromCompressedBytes(delegatingPublic));
    const verifying = keep(m.PublicKey.fromCompressedBytes(verifyingPublic));
    const parsed = keep(m.Capsule.fromBytes(capsule));
    const verified = cfrags.map((bytes) => keep(keep(m.CapsuleFrag.fromBytes(bytes)).verify(parsed, verifying,
      delegating, receiving)));
    return m.decryptReencrypted(secret, delegating, parsed, verified, ciphertext);
  });
}

/** Parse and re-serialise (a format check): capsule, kfrag or cfrag bytes -> the same bytes. */
export function roundTrip(kind, bytes) {
  const classes = { capsule: "Capsule", kfrag: "KeyFrag", cfrag: "CapsuleFrag" };
  if (!(kind in classes)) throw new UmbralError(`unknown Umbral object ${kind}`);
  return using((keep, m) => keep(m[classes[kind]].fromBytes(bytes)).toBytes());
}
