// The patient's wallet, through EIP-1193 only (window.ethereum): accounts, chain id, EIP-712
// signatures and transactions. Keys never leave it; receipts are read through the portal.
import { rpc } from "./api.js";

export class WalletError extends Error {
  constructor(message) {
    super(message);
    this.name = "WalletError";
  }
}

export function provider() {
  const eth = globalThis.ethereum;
  if (!eth || typeof eth.request !== "function") {
    throw new WalletError("No browser wallet was found. Install MetaMask (or any EIP-1193 wallet), then reload.");
  }
  return eth;
}

function explain(error, doing) {
  if (error instanceof WalletError) return error;
  if (error && error.code === 4001) return new WalletError(`You declined in the wallet while ${doing}; nothing was done.`);
  const reason = (error && error.message) || String(error);
  return new WalletError(`The wallet failed while ${doing}: ${reason}`);
}

async function ask(method, params, doing) {
  try {
    return await provider().request({ method, params });
  } catch (error) {
    throw explain(error, doing);
  }
}

export async function connect() {
  const accounts = await ask("eth_requestAccounts", [], "connecting");
  if (!Array.isArray(accounts) || accounts.length === 0) throw new WalletError("The wallet shared no account.");
  return accounts[0];
}

export async function chainId() {
  return Number.parseInt(await ask("eth_chainId", [], "reading its chain"), 16);
}

export function signTypedData(account, typedData) {
  return ask("eth_signTypedData_v4", [account, JSON.stringify(typedData)], "signing");
}

export function sendTransaction(account, { to, data }) {
  return ask("eth_sendTransaction", [{ from: account, to, data }], "sending a transaction");
}

/** The receipt of `hash`, polled through the portal until mined or `timeoutMs` passes. */
export async function waitForReceipt(hash, { timeoutMs = 60_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const receipt = await rpc("eth_getTransactionReceipt", [hash]);
    if (receipt) {
      if (receipt.status !== "0x1") {
        throw new WalletError(`Transaction ${hash} was mined but reverted: the chain refused it; nothing changed.`);
      }
      return receipt;
    }
    if (Date.now() > deadline) {
      throw new WalletError(`Transaction ${hash} was not mined within ${timeoutMs / 1000} s; check the chain, then reload.`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
