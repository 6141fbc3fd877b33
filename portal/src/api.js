// The portal server's API (same origin only; see ehr_client/portal/app.py) and chain reads
// through its JSON-RPC pass-through. Every failure becomes an ApiError with a message for people.
import { decodeFunctionResult, encodeFunctionData } from "viem";

export class ApiError extends Error {
  constructor(type, message, status = 0) {
    super(message);
    this.name = "ApiError";
    this.type = type;
    this.status = status;
  }
}

async function request(path, { method = "GET", body, json = true, binary = false, headers = {} } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      body,
      headers: body === undefined ? headers
        : { ...headers, "Content-Type": json ? "application/json" : "application/octet-stream" },
      cache: "no-store",
    });
  } catch {
    throw new ApiError("PortalUnavailable",
      "The portal server is not answering. Check that `ehr portal` is still running, then reload this page.");
  }
  if (!response.ok) {
    let error = { type: "HTTPError", message: `The portal answered ${response.status} ${response.statusText}.` };
    try {
      const doc = await response.json();
      if (doc && doc.error && typeof doc.error.message === "string") error = doc.error;
    } catch { /* not JSON: keep the status line */ }
    throw new ApiError(error.type, error.message, response.status);
  }
  if (binary) return new Uint8Array(await response.arrayBuffer());
  return response.json();
}

const post = (path, doc) => request(path, { method: "POST", body: JSON.stringify(doc) });

export const api = {
  config: () => request("/api/config"),
  account: (address) => request(`/api/accounts/${address}`),
  records: (patient) => request(`/api/records/${patient}`),
  batched: (recordId) => request(`/api/batched/${recordId}`),
  versions: (recordId) => request(`/api/versions/${recordId}`),
  blob: (cid) => request(`/api/blobs/${encodeURIComponent(cid)}`, { binary: true }),
  // Requests only the patient may make carry the patient's signature (see signedHeaders in app.js).
  uploadKeyShare: (bytes, headers) => request("/api/keyshares", { method: "POST", body: bytes, json: false, headers }),
  uploadPackage: (bytes, headers) => request("/api/packages", { method: "POST", body: bytes, json: false, headers }),
  rotated: (recordId, headers) => request(`/api/rotated/${recordId}`, { method: "POST", headers }),
  relay: (typedData, signature, keyShare) => post("/api/relay", { typedData, signature, keyShare }),
  grants: (patient) => request(`/api/grants/${patient}`),
  timeline: (patient) => request(`/api/timeline/${patient}`),
  timelineFhir: (patient) => request(`/api/timeline/${patient}/fhir`),
  erase: (recordId) => request(`/api/erase/${recordId}`, { method: "POST" }),
  // Key custodians, through the portal's own origin (it forwards the wallet-signed body unchanged).
  custodians: () => request("/api/custodians"),
  custodian: (address, action, body) => post(`/api/custodians/${address}/${action}`, body),
};

let rpcId = 0;

/** One JSON-RPC call through the portal's pass-through. */
export async function rpc(method, params = []) {
  const answer = await post("/api/rpc", { jsonrpc: "2.0", id: ++rpcId, method, params });
  if (answer.error) {
    throw new ApiError("RpcError", `The chain refused ${method}: ${answer.error.message || "no reason given"}`);
  }
  return answer.result;
}

/** A view call on one of the deployment's contracts, decoded with its ABI. */
export async function readContract(config, contract, functionName, args = []) {
  const abi = config.abis[contract];
  const data = encodeFunctionData({ abi, functionName, args });
  const result = await rpc("eth_call", [{ to: config.contracts[contract], data }, "latest"]);
  return decodeFunctionResult({ abi, functionName, data: result });
}

/** Calldata for a transaction the patient's wallet sends. */
export function callData(config, contract, functionName, args = []) {
  return encodeFunctionData({ abi: config.abis[contract], functionName, args });
}
