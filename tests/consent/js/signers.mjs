// Sign and recover EIP-712 consent with three signers nobody in this project wrote:
// MetaMask's @metamask/eth-sig-util (SignTypedDataVersion.V4), ethers v6 and viem.
//
// stdin:  {"typedData": <what `ehr grant --print-typed-data` printed>, "privateKey": "0x…",
//          "signature": "0x…" (optional: a signature made elsewhere to recover)}
// stdout: {"signatures": {lib: "0x…"}, "recovered": {lib: "0x…"}} (recovered only with "signature")
import { readFileSync } from "node:fs";
import { SignTypedDataVersion, recoverTypedSignature, signTypedData } from "@metamask/eth-sig-util";
import { Wallet, verifyTypedData } from "ethers";
import { recoverTypedDataAddress } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const input = JSON.parse(readFileSync(0, "utf8"));
const typed = input.typedData;
const key = input.privateKey;
// ethers takes the types without EIP712Domain (it derives the domain type itself)
const { EIP712Domain, ...types } = typed.types;
// viem wants numbers it cannot lose precision on as bigint
const viemMessage = JSON.parse(JSON.stringify(typed.message), (k, v) =>
  typeof v === "number" ? BigInt(v) : v);
const viemArgs = { domain: typed.domain, types, primaryType: typed.primaryType, message: viemMessage };

const signatures = {
  "eth-sig-util": signTypedData({
    privateKey: Buffer.from(key.replace(/^0x/, ""), "hex"), data: typed, version: SignTypedDataVersion.V4,
  }),
  ethers: await new Wallet(key).signTypedData(typed.domain, types, typed.message),
  viem: await privateKeyToAccount(key).signTypedData(viemArgs),
};

const out = { signatures };
if (input.signature) {
  const signature = input.signature;
  out.recovered = {
    "eth-sig-util": recoverTypedSignature({ data: typed, signature, version: SignTypedDataVersion.V4 }),
    ethers: verifyTypedData(typed.domain, types, typed.message, signature),
    viem: await recoverTypedDataAddress({ ...viemArgs, signature }),
  };
}
process.stdout.write(JSON.stringify(out) + "\n");
