// Drives portal/src/umbral.js (@nucypher/umbral-pre 0.10.0, WASM) for tests/portal_keys/test_umbral.py.
// stdin: {"wasm": "pkg-bundler" | path, "ops": [{op, ...hex args}]}; stdout: {"results": [...]}, each
// result either hex values or {"error": {"name", "message"}} (UmbralError) so Python checks refusals.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as umbral from "../../../portal/src/umbral.js";

const require = createRequire(import.meta.url);
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const bytes = (text) => new Uint8Array(Buffer.from(text, "hex"));

const ops = {
  publicKey: ({ secret }) => ({ publicKey: hex(umbral.publicKeyOf(bytes(secret))) }),
  encrypt: ({ publicKey, plaintext }) => {
    const { capsule, ciphertext } = umbral.encrypt(bytes(publicKey), bytes(plaintext));
    return { capsule: hex(capsule), ciphertext: hex(ciphertext) };
  },
  decryptOriginal: ({ secret, capsule, ciphertext }) =>
    ({ plaintext: hex(umbral.decryptOriginal(bytes(secret), bytes(capsule), bytes(ciphertext))) }),
  generateKFrags: ({ delegatingSecret, receivingPublic, threshold, shares }) => ({
    kfrags: umbral.generateKFrags({ delegatingSecret: bytes(delegatingSecret), receivingPublic: bytes(receivingPublic),
      threshold, shares }).map(hex),
  }),
  reencrypt: ({ capsule, kfrag, verifyingPublic, delegatingPublic, receivingPublic }) => ({
    cfrag: hex(umbral.reencrypt({ capsule: bytes(capsule), kfrag: bytes(kfrag), verifyingPublic: bytes(verifyingPublic),
      delegatingPublic: bytes(delegatingPublic), receivingPublic: bytes(receivingPublic) })),
  }),
  decryptReencrypted: ({ receivingSecret, delegatingPublic, verifyingPublic, capsule, cfrags, ciphertext }) => ({
    plaintext: hex(umbral.decryptReencrypted({ receivingSecret: bytes(receivingSecret),
      delegatingPublic: bytes(delegatingPublic), verifyingPublic: bytes(verifyingPublic), capsule: bytes(capsule),
      cfrags: cfrags.map(bytes), ciphertext: bytes(ciphertext) })),
  }),
  roundTrip: ({ kind, data }) => ({ data: hex(umbral.roundTrip(kind, bytes(data))) }),
};

const request = JSON.parse(readFileSync(0, "utf8"));
const wasmPath = request.wasm === "pkg-bundler" ? require.resolve(umbral.WASM_FILE) : request.wasm;
await umbral.initUmbral(new Uint8Array(readFileSync(wasmPath)));
const results = request.ops.map((op) => {
  try {
    return ops[op.op](op);
  } catch (error) {
    if (!(error instanceof umbral.UmbralError)) throw error;
    return { error: { name: error.name, message: error.message } };
  }
});
process.stdout.write(JSON.stringify({ results }) + "\n");
