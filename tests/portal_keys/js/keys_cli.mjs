// Drives portal/src/keys.js (and third-party signers) for tests/portal_keys from one JSON request
// on stdin; writes one JSON answer on stdout. Errors thrown by keys.js come back as
// {"error": {"name", "message"}} so the Python side can check the typed error.
//
// ops: derive {signatures: [hex]}                      -> {keys: [{x25519Secret, x25519Public, umbralSecret, umbralPublic}]}
//      typed  {chainId, verifyingContract, account, generation} -> {typedData, digest}
//      sign   {typedData, privateKey}                  -> {signatures: {ethers, viem, "eth-sig-util"}}
//      random-k {typedData, privateKey}                 -> {signatures: [two valid signatures with random k]}
//      wallet {privateKey, deployment, account?, generation?, mode: "ethers"|"random-k"|"other-account"}
//             -> deriveFromWallet through an EIP-1193 provider -> {keys, requests}
import { readFileSync } from "node:fs";
import { SignTypedDataVersion, signTypedData } from "@metamask/eth-sig-util";
import { Wallet } from "ethers";
import { privateKeyToAccount } from "viem/accounts";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import * as keys from "../../../portal/src/keys.js";

const hex = keys.bytesToHex;
const keysJson = (k) => Object.fromEntries(Object.entries(k).map(([name, value]) => [name, hex(value)]));

function withoutDomainType(typed) {
  const { EIP712Domain, ...types } = typed.types;
  return types;
}

async function signAll(typed, privateKey) {
  const types = withoutDomainType(typed);
  return {
    "eth-sig-util": signTypedData({
      privateKey: Buffer.from(privateKey.replace(/^0x/, ""), "hex"), data: typed, version: SignTypedDataVersion.V4,
    }),
    ethers: await new Wallet(privateKey).signTypedData(typed.domain, types, typed.message),
    viem: await privateKeyToAccount(privateKey).signTypedData({
      domain: typed.domain, types, primaryType: typed.primaryType,
      message: typed.message,
    }),
  };
}

// A valid low-s signature with fresh randomness mixed into k (RFC 6979 section 3.6): never the same twice.
function randomK(typed, privateKey) {
  const digest = keys.derivationDigest(typed);
  const sig = secp256k1.sign(digest, keys.hexToBytes(privateKey), { prehash: false, extraEntropy: true, format: "recovered" });
  // noble's recovered format is recovery || r || s; Ethereum's is r || s || (27 + recovery)
  return hex(new Uint8Array([...sig.subarray(1), 27 + sig[0]]));
}

// An EIP-1193 provider over a private key, like a browser wallet: "ethers" signs as ethers'
// Wallet does (RFC 6979); "random-k" adds fresh randomness to every signature (valid, low-s,
// but never the same twice); "other-account" signs with a different key than the one asked.
function provider(privateKey, mode, log) {
  const wallet = new Wallet(mode === "other-account" ? "0x" + "42".repeat(32) : privateKey);
  return {
    async request({ method, params }) {
      log.push({ method, account: params[0] });
      if (method !== "eth_signTypedData_v4") throw new Error(`unsupported method ${method}`);
      const typed = JSON.parse(params[1]);
      if (mode === "random-k") return randomK(typed, privateKey);
      return wallet.signTypedData(typed.domain, withoutDomainType(typed), typed.message);
    },
  };
}

async function handle(request) {
  switch (request.op) {
    case "derive":
      return { keys: await Promise.all(request.signatures.map(async (s) => keysJson(await keys.deriveKeys(s)))) };
    case "typed": {
      const typedData = keys.derivationTypedData(request);
      return { typedData, digest: hex(keys.derivationDigest(typedData)) };
    }
    case "sign":
      return { signatures: await signAll(request.typedData, request.privateKey) };
    case "random-k":
      return { signatures: [randomK(request.typedData, request.privateKey), randomK(request.typedData, request.privateKey)] };
    case "wallet": {
      const log = [];
      const account = request.account ?? new Wallet(request.privateKey).address;
      const derived = await keys.deriveFromWallet(provider(request.privateKey, request.mode, log), account,
        request.deployment, { generation: request.generation ?? 1 });
      return { keys: keysJson(derived), requests: log };
    }
    default:
      throw new Error(`unknown op ${request.op}`);
  }
}

const request = JSON.parse(readFileSync(0, "utf8"));
let answer;
try {
  answer = await handle(request);
} catch (error) {
  if (!(error instanceof keys.KeyDerivationError)) throw error;
  answer = { error: { name: error.name, message: error.message } };
}
process.stdout.write(JSON.stringify(answer) + "\n");
