// Encryption keys from a wallet signature: the browser half of ehr_client/keys/derive.py.
//
// A wallet signs but cannot decrypt, so the patient's X25519 and Umbral keys are derived from its
// signature over one fixed EIP-712 document. The same wallet yields byte-identical keys here and
// in `ehr keys derive` (tests/portal_keys checks it); the derivation is specified in derive.py's
// docstring and SECURITY.md ("Keys derived from a wallet"):
//
//   domain   {name: "EHR key derivation", version: "1", chainId, verifyingContract: KeyRegistry}
//   message  KeyDerivation(string statement, address account, uint32 keyGeneration)
//   ikm      r || s of the canonical 65-byte signature (low s, v 27/28; anything else refused)
//   secret_K (OS2IP(HKDF-SHA256(ikm, "EHR wallet-derived keys v1 salt " || K,
//                   "EHR wallet-derived keys v1 " || K || " secret key", 48)) mod (n - 1)) + 1
//            for K in {x25519, umbral}, n the secp256k1 order, 32 bytes big-endian
//
// Works in browsers (bundled by esbuild) and in Node; no WebCrypto needed. Bytes are Uint8Array.
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { keccak_256 } from "@noble/hashes/sha3.js";

export const DOMAIN_NAME = "EHR key derivation";
export const DOMAIN_VERSION = "1";
export const STATEMENT =
  "Sign this only on your own health-record portal. This signature unlocks the keys that decrypt " +
  "your health records: anyone who obtains it can read them.";
export const MAX_GENERATION = 2 ** 32 - 1;

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const TYPES = {
  EIP712Domain: [
    { name: "name", type: "string" },
    { name: "version", type: "string" },
    { name: "chainId", type: "uint256" },
    { name: "verifyingContract", type: "address" },
  ],
  KeyDerivation: [
    { name: "statement", type: "string" },
    { name: "account", type: "address" },
    { name: "keyGeneration", type: "uint32" },
  ],
};
const utf8 = (text) => new TextEncoder().encode(text);

/** Deriving keys from a wallet is refused: a bad signature, another account, bad parameters. */
export class KeyDerivationError extends Error {
  constructor(message) {
    super(message);
    this.name = "KeyDerivationError";
  }
}

/** The wallet signed the same message twice differently: its keys could never be derived again. */
export class NonDeterministicWalletError extends KeyDerivationError {
  constructor(message) {
    super(message);
    this.name = "NonDeterministicWalletError";
  }
}

/** EIP-55 checksummed form of a 20-byte hex address. */
export function toChecksumAddress(address) {
  if (typeof address !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(address)) {
    throw new KeyDerivationError(`not a 20-byte hex address: ${String(address)}`);
  }
  const lower = address.slice(2).toLowerCase();
  const hash = keccak_256(utf8(lower));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const nibble = (hash[i >> 1] >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    out += nibble >= 8 ? lower[i].toUpperCase() : lower[i];
  }
  return out;
}

/** The EIP-712 document a wallet signs (what eth_signTypedData_v4 takes) to derive `account`'s keys
 * on one deployment; `verifyingContract` is the deployment's KeyRegistry, `generation` starts at 1
 * and is raised to rotate derived keys. */
export function derivationTypedData({ chainId, verifyingContract, account, generation = 1 }) {
  const chain = typeof chainId === "bigint" ? chainId : BigInt(Number.isSafeInteger(chainId) ? chainId : -1);
  if (chain <= 0n || chain > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new KeyDerivationError("the chain id must be a positive integer: read it from the deployment");
  }
  if (!Number.isInteger(generation) || generation < 1 || generation > MAX_GENERATION) {
    throw new KeyDerivationError(`the key generation must be a whole number from 1 to ${MAX_GENERATION}`);
  }
  return {
    types: JSON.parse(JSON.stringify(TYPES)),
    primaryType: "KeyDerivation",
    domain: {
      name: DOMAIN_NAME,
      version: DOMAIN_VERSION,
      chainId: Number(chain),
      verifyingContract: toChecksumAddress(verifyingContract),
    },
    message: { statement: STATEMENT, account: toChecksumAddress(account), keyGeneration: generation },
  };
}

function word(value) {
  const out = new Uint8Array(32);
  let v = BigInt(value);
  for (let i = 31; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function addressWord(address) {
  const out = new Uint8Array(32);
  out.set(hexToBytes(address), 12);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeType(name) {
  return `${name}(${TYPES[name].map((f) => `${f.type} ${f.name}`).join(",")})`;
}

/** The EIP-712 digest of a derivation document (its own types only; built by derivationTypedData). */
export function derivationDigest(typed) {
  const { domain, message } = typed;
  const domainSeparator = keccak_256(concat(
    keccak_256(utf8(encodeType("EIP712Domain"))), keccak_256(utf8(domain.name)), keccak_256(utf8(domain.version)),
    word(domain.chainId), addressWord(domain.verifyingContract)));
  const structHash = keccak_256(concat(
    keccak_256(utf8(encodeType("KeyDerivation"))), keccak_256(utf8(message.statement)),
    addressWord(message.account), word(message.keyGeneration)));
  return keccak_256(concat(new Uint8Array([0x19, 0x01]), domainSeparator, structHash));
}

export function hexToBytes(hex) {
  if (typeof hex !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(hex)) {
    throw new KeyDerivationError("expected 0x-prefixed hex bytes");
  }
  const out = new Uint8Array((hex.length - 2) / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 + 2 * i, 4 + 2 * i), 16);
  return out;
}

export function bytesToHex(bytes) {
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function bigFromBytes(bytes) {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** r || s of a canonical 65-byte signature (r in [1, n-1], s in [1, n/2], v 27 or 28). */
export function checkSignature(signature) {
  const sig = typeof signature === "string" ? hexToBytes(signature) : signature;
  if (!(sig instanceof Uint8Array) || sig.length !== 65) {
    throw new KeyDerivationError("a key-derivation signature is 65 bytes (r || s || v): pass what the wallet returned");
  }
  const r = bigFromBytes(sig.subarray(0, 32));
  const s = bigFromBytes(sig.subarray(32, 64));
  const v = sig[64];
  if (!(r > 0n && r < N) || !(s > 0n && s <= N / 2n) || (v !== 27 && v !== 28)) {
    throw new KeyDerivationError(
      "the signature is not canonical (it needs low s and v = 27 or 28, as Ethereum wallets sign); " +
      "keys are only derived from canonical signatures: sign with another wallet");
  }
  return sig.slice(0, 64);
}

function scalar(ikm, kind) {
  const okm = hkdf(sha256, ikm, utf8(`EHR wallet-derived keys v1 salt ${kind}`),
    utf8(`EHR wallet-derived keys v1 ${kind} secret key`), 48);
  const value = (bigFromBytes(okm) % (N - 1n)) + 1n;
  return word(value);
}

/** The keys of a canonical signature over derivationTypedData: x25519 public raw (32 bytes),
 * umbral public compressed SEC1 (33 bytes), secrets 32 bytes. Async to match the other modules. */
export async function deriveKeys(signatureHex) {
  const ikm = checkSignature(signatureHex);
  const x25519Secret = scalar(ikm, "x25519");
  const umbralSecret = scalar(ikm, "umbral");
  return {
    x25519Secret,
    x25519Public: x25519.getPublicKey(x25519Secret),
    umbralSecret,
    umbralPublic: secp256k1.getPublicKey(umbralSecret, true),
  };
}

/** The checksummed address that made `signature` over `typed` (a derivation document). */
export function recoverSigner(typed, signature) {
  const rs = checkSignature(signature);
  const sig = typeof signature === "string" ? hexToBytes(signature) : signature;
  const point = secp256k1.Signature.fromBytes(rs, "compact").addRecoveryBit(sig[64] - 27)
    .recoverPublicKey(derivationDigest(typed));
  const uncompressed = point.toBytes(false);
  return toChecksumAddress(bytesToHex(keccak_256(uncompressed.subarray(1)).subarray(12)));
}

/** `deployment`: the deployment file's JSON ({chainId, contracts: {KeyRegistry}}) or
 * {chainId, keyRegistry}. */
function deploymentParams(deployment) {
  const verifyingContract = deployment?.contracts?.KeyRegistry ?? deployment?.keyRegistry;
  if (deployment?.chainId === undefined || verifyingContract === undefined) {
    throw new KeyDerivationError("the deployment must give chainId and the KeyRegistry address");
  }
  return { chainId: deployment.chainId, verifyingContract };
}

/** Ask an EIP-1193 wallet twice to sign the derivation document for `account`, refuse if the two
 * signatures differ or are not `account`'s, and derive the keys. `options.generation` (default 1)
 * selects the key generation. The wallet must be on the deployment's chain (wallets refuse typed
 * data for another chainId). */
export async function deriveFromWallet(provider, account, deployment, { generation = 1 } = {}) {
  const typed = derivationTypedData({ ...deploymentParams(deployment), account, generation });
  const payload = JSON.stringify(typed);
  const ask = () => provider.request({ method: "eth_signTypedData_v4", params: [typed.message.account, payload] });
  const first = await ask();
  const second = await ask();
  if (typeof first !== "string" || typeof second !== "string") {
    throw new KeyDerivationError("the wallet returned no signature: approve the key-derivation request");
  }
  if (first.toLowerCase() !== second.toLowerCase()) {
    throw new NonDeterministicWalletError(
      "the wallet gave two different signatures for the same key-derivation message, so the keys it would " +
      "derive could never be derived again: use a wallet that signs deterministically (RFC 6979)");
  }
  const keys = await deriveKeys(first);
  let signer;
  try {
    signer = recoverSigner(typed, first);
  } catch (error) {
    if (error instanceof KeyDerivationError) throw error;
    throw new KeyDerivationError("the wallet's signature does not verify: sign again with the same account");
  }
  if (signer !== typed.message.account) {
    throw new KeyDerivationError(
      `the signature was made by ${signer}, not by ${typed.message.account}: switch the wallet to that account and sign again`);
  }
  return keys;
}
