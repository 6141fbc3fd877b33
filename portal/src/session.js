// The page's state for the connected wallet: its derived keys (in memory only), what the chain says
// about the account, its records, and the custodians the portal forwards to.
import { api } from "./api.js";

export const session = { config: null, account: null, keys: null, secrets: new Map(), info: null, records: [], custodians: null };

export const audited = () => Boolean(session.custodians && session.custodians.configured);

export function hexOf(bytes) {
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function refreshAccount() {
  session.info = await api.account(session.account);
  session.secrets = new Map();
  const key = session.info.x25519;
  if (key && key.publicKey.toLowerCase() === hexOf(session.keys.x25519Public)) {
    session.secrets.set(key.version, session.keys.x25519Secret);
  }
}

/** Audited release needs the wallet-derived Umbral key published (only asked where custodians are configured). */
export function needsUmbral() {
  const key = session.info.umbral;
  return audited() && !(key && key.publicKey.toLowerCase() === hexOf(session.keys.umbralPublic));
}

export async function loadRecords() {
  const listing = await api.records(session.account);
  session.records = listing.records;
  return listing;
}

export function hexToBytes(hex) {
  const clean = hex.replace(/^0x/, "");
  return Uint8Array.from(clean.match(/../g) || [], (b) => Number.parseInt(b, 16));
}
