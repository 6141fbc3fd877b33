// The patient's portal: connect a wallet, register, see and open records, grant and revoke
// access with signed consent, follow who opened what. Keys are derived from the wallet and stay
// in this page's memory; the server sees ciphertext, chain reads and signed consent only.
import { ApiError, api, callData, readContract, rpc } from "./api.js";
import { destroyAtCustodians, receiptsView, releaseKeys, rotateAtCustodians, showReleases } from "./audited_view.js";
import { CustodianError, umbralSealer } from "./custodians.js";
import { h, replace, short, when } from "./dom.js";
import { renderFhir } from "./fhir.js";
import { makeKeyShare } from "./format.js";
import { deriveFromWallet } from "./keys.js";
import { FHIR_MEDIA_TYPE, openRecord, rotatedPackage, versionChains } from "./records.js";
import { audited, hexOf, hexToBytes, loadRecords, needsUmbral, refreshAccount, session } from "./session.js";
import { act, clearStatus, describeError, main, onChain, showError, showInfo, statusBar } from "./ui.js";
import * as wallet from "./wallet.js";

// --- shell -------------------------------------------------------------------------------------

function renderHeader() {
  const nav = document.getElementById("nav");
  const connected = session.account !== null;
  replace(nav,
    connected && session.keys ? [
      h("a", { href: "#records" }, "Records"),
      h("a", { href: "#grant" }, "Grant access"),
      h("a", { href: "#grants" }, "Active grants"),
      h("a", { href: "#timeline" }, "Who opened my records"),
    ] : null,
    h("span.account", { id: "account" }, connected ? `${short(session.account)} · chain ${session.config.chainId}` : "not connected"));
}

async function start() {
  window.addEventListener("unhandledrejection", (event) => showError(event.reason));
  window.addEventListener("error", (event) => showError(event.error || event.message));
  window.addEventListener("hashchange", () => { clearStatus(); route(); });
  try {
    session.config = await api.config();
  } catch (error) {
    replace(main(), h("section.card", {},
      h("h2", {}, "The portal cannot start"),
      h("p", { id: "startup-error" }, describeError(error)),
      h("button", { onclick: () => location.reload() }, "Try again")));
    showError(error, "Loading the deployment");
    return;
  }
  try {
    session.custodians = await api.custodians();
  } catch {
    session.custodians = { configured: false, custodians: [] };  // no audited release until the page reloads
  }
  renderHeader();
  route();
}

function route() {
  if (!session.account || !session.keys) return renderConnect();
  const [view, arg] = location.hash.replace(/^#/, "").split("/");
  const views = { records: renderRecords, record: renderRecord, grant: renderGrant, grants: renderGrants,
    timeline: renderTimeline, register: renderRegister };
  const render = views[view] || renderRecords;
  render(arg).catch((error) => showError(error));
}

// --- connect and register ------------------------------------------------------------------------

function renderConnect() {
  replace(main(), h("section.card", { id: "connect-view" },
    h("h2", {}, "Connect your wallet"),
    h("p", {}, `This portal serves the ${session.config.network} deployment (chain ${session.config.chainId}). `
      + "Your wallet signs; your encryption keys are derived from one signature and never leave this page."),
    onChain("Connecting puts nothing on chain and costs nothing.",
      "Your wallet asks you twice to sign a key-derivation message (the same message each time, to check the wallet signs deterministically)."),
    h("button.primary", { id: "connect", onclick: connect }, "Connect wallet")));
}

async function connect() {
  await act("Connecting the wallet", async () => {
    const account = await wallet.connect();
    const chain = await wallet.chainId();
    if (chain !== session.config.chainId) {
      throw new wallet.WalletError(`Your wallet is on chain ${chain}; switch it to chain ${session.config.chainId} (${session.config.network}) and connect again.`);
    }
    showInfo("Deriving your encryption keys: approve the two signature requests in your wallet…");
    const keys = await deriveFromWallet(wallet.provider(), account, session.config);
    session.account = (await api.account(account)).account;
    session.keys = keys;
    // keys belong to this account on this chain: another account or chain starts over (keys dropped)
    const eth = wallet.provider();
    if (typeof eth.on === "function") {
      eth.on("accountsChanged", () => location.reload());
      eth.on("chainChanged", () => location.reload());
    }
    await refreshAccount();
  });
  renderHeader();
  if (session.keys) location.hash = needsRegistration() ? "#register" : "#records";
  route();
}

function needsRegistration() {
  return !session.info.registeredPatient || session.secrets.size === 0 || needsUmbral();
}

async function renderRegister() {
  const info = session.info;
  const derived = hexOf(session.keys.x25519Public);
  const other = info.x25519 && info.x25519.publicKey.toLowerCase() !== derived;
  replace(main(), h("section.card", { id: "register-view" },
    h("h2", {}, "Register as a patient"),
    !needsRegistration() ? h("p.ok", { id: "registered" }, "You are registered and your derived key is published.") : null,
    other ? h("p.warning", {}, `A different encryption key (version ${info.x25519.version}) is published for this account, `
      + "probably from a keystore. Publishing the wallet-derived key replaces it: records sealed to the old key then open "
      + "only where that keystore is.") : null,
    onChain(
      info.registeredPatient ? "Already registered: no registration transaction." :
        "Transaction 1: RecordRegistry.registerPatient() — your address becomes a patient (a pseudonym; no name or health data).",
      session.secrets.size ? "Your derived key is already published: no key transaction." :
        `Transaction ${info.registeredPatient ? 1 : 2}: KeyRegistry.publishKey(X25519, ${short(derived)}) — your public encryption key, so records can be sealed to you.`,
      audited() ? (needsUmbral() ? `Then KeyRegistry.publishKey(Umbral, ${short(hexOf(session.keys.umbralPublic))}) — your public Umbral key, `
        + "so records written for you carry a capsule the key custodians can re-encrypt for people you grant (audited release)."
        : "Your Umbral key for audited release is already published: no transaction.") : null,
      "You pay the gas for these from your wallet (there is no signed form of registration a relayer could send)."),
    needsRegistration() ? h("button.primary", { id: "register", onclick: register }, "Register and publish my key") :
      h("a.button", { href: "#records" }, "See my records")));
}

async function sendAndWait(label, contract, fn, args) {
  showInfo(`${label}: confirm the transaction in your wallet…`);
  const hash = await wallet.sendTransaction(session.account, {
    to: session.config.contracts[contract], data: callData(session.config, contract, fn, args) });
  showInfo(`${label}: waiting for transaction ${short(hash)} to be mined…`);
  const receipt = await wallet.waitForReceipt(hash);
  return { hash, gasUsed: Number.parseInt(receipt.gasUsed, 16), block: Number.parseInt(receipt.blockNumber, 16) };
}

async function register() {
  const done = await act("Registering", async () => {
    const txs = [];
    if (!session.info.registeredPatient) txs.push(await sendAndWait("Registering", "RecordRegistry", "registerPatient", []));
    if (session.secrets.size === 0) {
      txs.push(await sendAndWait("Publishing your key", "KeyRegistry", "publishKey",
        [session.config.keyTypes.X25519, hexOf(session.keys.x25519Public)]));
    }
    if (needsUmbral()) {
      txs.push(await sendAndWait("Publishing your Umbral key", "KeyRegistry", "publishKey",
        [session.config.keyTypes.UMBRAL, hexOf(session.keys.umbralPublic)]));
    }
    await refreshAccount();
    return txs;
  });
  if (done) {
    await renderRegister();
    statusBar().append(h("div.message.ok", { role: "status", id: "register-done" },
      `Done in ${done.length} transaction(s): ${done.map((t) => `${short(t.hash)} (${t.gasUsed} gas, paid by you)`).join(", ")}.`));
  }
}

// --- records ---------------------------------------------------------------------------------------

async function renderRecords() {
  replace(main(), h("p", {}, "Loading your records…"));
  const at = location.hash;
  const listing = await loadRecords();
  if (location.hash !== at) return;  // the patient went elsewhere meanwhile: do not replace that view
  const chains = versionChains(listing.records);
  replace(main(), h("section.card", { id: "records-view" },
    h("h2", {}, "Your records"),
    chains.length === 0 ? h("p", { id: "no-records" }, "No records yet. A provider or lab you granted \"amend\" can add them.") :
      h("table", { id: "records" },
        h("thead", {}, h("tr", {}, ["Category", "Author", "Date", "Status", "Versions", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, chains.map((chain) => {
          const newest = chain[chain.length - 1];
          return h("tr", { dataset: { record: newest.recordId } },
            h("td", {}, newest.categories.join(", ")),
            h("td", { title: newest.author }, short(newest.author)),
            h("td", {}, when(newest.timestamp)),
            h("td", { class: `status-${newest.status}` }, newest.status),
            h("td", {}, chain.length === 1 ? "1" : `${chain.length} (amended)`),
            h("td", {}, h("a.button", { href: `#record/${newest.recordId}` }, "Open")));
        }))),
    listing.skipped.length ? h("div.message.warning", {},
      `${listing.skipped.length} entr${listing.skipped.length === 1 ? "y" : "ies"} another member anchored could not be verified and `
      + `${listing.skipped.length === 1 ? "is" : "are"} not listed: ${listing.skipped.map((s) => s.reason).join("; ")}`) : null));
}

// A file record's bytes are whatever its author wrote. Offered as application/octet-stream whatever
// its media type says: a blob: URL of text/html or image/svg+xml opened in a tab would run the
// author's script in the portal's origin, outside its Content-Security-Policy.
const SAFE_EXTENSIONS = { "application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg",
  "application/dicom": ".dcm", "text/plain": ".txt", "application/fhir+json": ".json", "application/json": ".json" };

function download(bytes, mediaType, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  const file = name + (SAFE_EXTENSIONS[mediaType] || ".bin");
  return h("a.button", { href: url, download: file, id: "download" }, `Download (${mediaType}, ${bytes.length} bytes)`);
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** Headers of a request only the patient may make: an EIP-712 PortalRequest signed in the wallet
 * (ehr_client/portal/signed.py), naming the action, its subject and a 5-minute expiry. */
async function signedHeaders(action, subject) {
  const expires = Math.floor(Date.now() / 1000) + 300;
  const doc = {
    types: {
      EIP712Domain: [{ name: "name", type: "string" }, { name: "version", type: "string" },
        { name: "chainId", type: "uint256" }, { name: "verifyingContract", type: "address" }],
      PortalRequest: [{ name: "action", type: "string" }, { name: "subject", type: "bytes32" },
        { name: "expires", type: "uint64" }],
    },
    primaryType: "PortalRequest",
    domain: { name: "EHR portal request", version: "1", chainId: session.config.chainId,
      verifyingContract: session.config.contracts.RecordRegistry },
    message: { action, subject, expires },
  };
  showInfo(`Sign the request in your wallet (${action}): it lets the portal act for you once.`);
  const signature = await wallet.signTypedData(session.account, doc);
  return { "X-EHR-Signature": signature, "X-EHR-Expires": String(expires) };
}

function renderResource(resource) {
  try {
    return renderFhir(resource);
  } catch {
    // Its author wrote FHIR of another shape than its type has: show it as text, not a script error.
    return h("div", {},
      h("p.message.warning", { id: "fhir-shape" }, "This record's FHIR does not have the shape its type requires, "
        + "so it is shown as its JSON text."),
      h("pre", {}, JSON.stringify(resource, null, 2)));
  }
}

async function renderRecord(recordId) {
  // the cached listing may predate this record (written since): list again before saying it is not there
  const at = location.hash;
  if (!session.records.some((r) => r.recordId === recordId)) await loadRecords();
  if (location.hash !== at) return;
  const record = session.records.find((r) => r.recordId === recordId);
  if (!record) throw new ApiError("RecordNotFound", `No record ${recordId} is listed for you.`);
  const chain = versionChains(session.records).find((c) => c.some((r) => r.recordId === recordId)) || [record];
  const body = h("div", { id: "record-body" }, h("p", {}, "Opening the record in your browser…"));
  replace(main(), h("section.card", { id: "record-view" },
    h("h2", {}, `Record: ${record.categories.join(", ")}`),
    h("dl.facts", {},
      h("dt", {}, "Record id"), h("dd.mono", {}, record.recordId),
      h("dt", {}, "Author"), h("dd.mono", {}, record.author),
      h("dt", {}, "Anchored"), h("dd", {}, `${when(record.timestamp)} (block ${record.blockNumber})`),
      h("dt", {}, "Status"), h("dd", { id: "record-status" }, record.status),
      h("dt", {}, "Versions"), h("dd", {}, chain.map((r, i) =>
        h("a", { href: `#record/${r.recordId}`, class: r.recordId === recordId ? "current" : "" }, `v${i + 1} `)))),
    body,
    record.status === "active" ? rotateBox(record) : null,
    record.status !== "tombstoned" ? eraseBox(chain) : null));
  if (record.status === "tombstoned") {
    replace(body, record.stored
      ? h("div.message.warning", { id: "erased" }, "This record is tombstoned on chain, but the portal still holds its "
        + "ciphertext (the unpin was interrupted). ",
        h("button", { id: "unpin-again", onclick: () => erase(chain) }, "Unpin it now"))
      : h("p.message.warning", { id: "erased" }, "This record was erased: tombstoned on chain, its ciphertext unpinned."),
    audited() ? h("p", {}, h("button", { id: "collect-receipts", onclick: () => collectReceipts(chain) },
      "Ask the custodians for their erasure receipts"), " (your wallet signs one request per custodian and version; off chain, free)")
      : null);
    return;
  }
  try {
    const opened = await openRecord(record, session);
    if (opened.mediaType === FHIR_MEDIA_TYPE) {
      const resource = JSON.parse(new TextDecoder().decode(opened.plaintext));
      replace(body, h("p.ok", {}, "Verified against the chain and decrypted in this browser."), renderResource(resource));
    } else {
      replace(body, h("p.ok", {}, "Verified and decrypted in this browser. This record is a file:"),
        download(opened.plaintext, opened.mediaType, `record-${record.recordId.slice(2, 10)}`));
    }
  } catch (error) {
    replace(body, h("div.message.error", { role: "alert", id: "record-error" }, describeError(error)));
  }
}

function rotateBox(record) {
  return h("section.rotate", {},
    h("h3", {}, "Rotate this record's key"),
    h("p", {}, "Re-encrypts the record in this browser under a new key, as a new version sealed to you only; "
      + "the old ciphertext is unpinned, so key shares for it open nothing any more. Grant again to share the new version."),
    onChain(`1 transaction: RecordRegistry.${record.batched ? "amendBatchedRecord(the batch's proof of it" : "amendRecord(previous"}, `
      + "salt, sha256, CID) — a new version, no content; you pay the gas.",
      "The new ciphertext goes to the portal's store; the old one is unpinned once the chain shows it superseded by your version."),
    h("button", { id: "rotate", onclick: () => rotate(record) }, "Rotate key"));
}

async function rotate(record) {
  const done = await act("Rotating the key", async () => {
    const opened = await openRecord(record, session);
    const umbral = audited() && !needsUmbral() ? await umbralSealer(session.keys.umbralPublic, session.info.umbral.version) : null;
    const rotated = await rotatedPackage(record, opened, session, { umbral });
    const digest = hexOf(await sha256(rotated.package));
    const stored = await api.uploadPackage(rotated.package, await signedHeaders("store-package", digest));
    if (stored.contentHash !== digest) throw new Error("The portal stored other bytes than the page sent; nothing was anchored.");
    const inBatch = await batchedArg(record);
    const tx = inBatch
      ? await sendAndWait("Anchoring the new version", "RecordRegistry", "amendBatchedRecord",
        [inBatch, rotated.salt, stored.contentHash, stored.cidBytes])
      : await sendAndWait("Anchoring the new version", "RecordRegistry", "amendRecord",
        [record.recordId, rotated.salt, stored.contentHash, stored.cidBytes]);
    const unpinned = await api.rotated(record.recordId, await signedHeaders("unpin-rotated", record.recordId));
    const custodians = audited() ? await rotateAtCustodians(record, rotated.recordId) : null;
    return { tx, recordId: rotated.recordId, unpinned, custodians };
  });
  if (!done) return;
  await loadRecords();
  history.pushState(null, "", `#record/${done.recordId}`);  // no hashchange: the message below stays
  await renderRecord(done.recordId);
  statusBar().append(h("div.message.ok", { id: "rotate-done" },
    `Rotated: new version ${short(done.recordId)} anchored (${done.tx.gasUsed} gas, paid by you); `
    + `${done.unpinned.unpinned.length} old blob(s) unpinned.`,
    done.custodians ? h("p", { id: "rotate-reissued" }, done.custodians.reissued.length
      ? `Key fragments of the new version deposited for ${done.custodians.reissued.map(short).join(", ")} (grants still in force).`
      : "No grant in force covers this record: no fragments re-issued.") : null,
    done.custodians && done.custodians.failed.length ? h("p.warning", { id: "rotate-not-reissued" },
      `Not re-issued (grant again to retry): ${done.custodians.failed.join("; ")}`) : null),
  done.custodians ? receiptsView(done.custodians.destroyed) : null);
}

/** For a record anchored in a batch and not yet stored on its own: the contracts' BatchedRecord
 * (its batch's commitment and Merkle path) the wallet sends instead of the id; else null. */
async function batchedArg(record) {
  if (!record.batched) return null;
  const found = await api.batched(record.recordId);
  if (found.stored) return null;
  const b = found.batchedRecord;
  return { ...b, scopes: BigInt(b.scopes), scope: BigInt(b.scope), leafCount: Number(b.leafCount), index: Number(b.index) };
}

function eraseBox(chain) {
  const pending = chain.filter((r) => r.status !== "tombstoned");
  return h("section.danger", {},
    h("h3", {}, "Erase this record (GDPR Art. 17)"),
    onChain(`${pending.length} transaction(s): RecordRegistry.tombstone(id) for each version (tombstoneBatchedRecord(its proof) `
      + "for one anchored in a batch) — marks it erased; you pay the gas.",
      "Then the portal unpins the ciphertext from storage once the chain shows the tombstones (nothing on chain).",
      audited() ? "Then each key custodian destroys its key fragments of every version and signs a receipt; your wallet "
        + "signs one destruction request per custodian and version (off chain, free). The receipts are checked in this browser." : null),
    h("button.danger", { id: "erase", onclick: () => erase(chain) }, "Erase for good"));
}

// Rounds of "tombstone, then look for versions amended in the meantime" before the page gives up on
// a grantee who keeps amending (as MAX_SUCCESSOR_ROUNDS in the Python client's erasure).
const MAX_ERASE_ROUNDS = 8;

async function erase(chain) {
  if (!window.confirm("Erase this record and all its versions for good? This cannot be undone.")) return;
  const done = await act("Erasing", async () => {
    const txs = [];  // an erase whose unpin was interrupted has nothing left to tombstone: it unpins again
    // A grantee with amend access may add a version while the wallet sends the tombstones, even one whose
    // pointer is not a CID (the listing leaves that out): after each round the page asks again for every
    // version of this record as the chain states it (/api/versions) and tombstones those still live.
    let versions;
    for (let round = 0; ; round++) {
      versions = (await api.versions(chain[chain.length - 1].recordId)).versions;
      const pending = versions.filter((r) => r.status !== "tombstoned");
      if (!pending.length) break;
      if (round === MAX_ERASE_ROUNDS) {
        throw new ApiError("ErasureIncomplete", `Versions keep being amended onto this record (${pending.map((r) => short(r.recordId)).join(", ")}) `
          + "while it is erased. Revoke the amend access of their authors, then erase again.");
      }
      for (const version of pending) {
        const inBatch = await batchedArg(version);
        txs.push(inBatch ? await sendAndWait("Tombstoning", "RecordRegistry", "tombstoneBatchedRecord", [inBatch])
          : await sendAndWait("Tombstoning", "RecordRegistry", "tombstone", [version.recordId]));
      }
    }
    // The portal unpins the newest version that verifies and those before it; one that does not verify has no bytes.
    const newest = versions.filter((r) => r.verified).at(-1) || chain[chain.length - 1];
    const unpinned = await api.erase(newest.recordId);
    const custodians = audited() ? await destroyAtCustodians(versions.map((r) => r.recordId)) : null;
    return { txs, unpinned, custodians, newest: newest.recordId, unverified: versions.filter((r) => !r.verified) };
  });
  if (!done) return;
  await loadRecords();
  await renderRecord(done.newest);
  const reissued = done.unpinned.reissuedShares || [];
  statusBar().append(h("div.message.ok", { id: "erase-done" },
    `Erased: ${done.txs.length} tombstone transaction(s) (${done.txs.map((t) => `${t.gasUsed} gas`).join(", ")}, paid by you); `
    + `${done.unpinned.unpinned.length} blob(s) unpinned.`,
    done.unverified.length ? h("p.warning", { id: "erase-unverified" }, "Tombstoned too, though they do not verify "
      + "(nothing of theirs to unpin): ", done.unverified.map((r) => `${short(r.recordId)} by ${short(r.author)} (${r.problem})`).join("; ")) : null,
    reissued.some((r) => !r.problem) ? h("p", { id: "reissued-shares" }, "Key shares stored here held this record's keys; they were "
      + "re-issued without them and the old ones unpinned. Hand each grantee the new share: ",
      ...reissued.filter((r) => !r.problem).map((r) => h("span", {}, `${short(r.grantee)}: `,
        r.new ? h("code", {}, r.new) : "nothing left to share", "; "))) : null,
    reissued.some((r) => r.problem) ? h("p.warning", { id: "shares-left" }, "Key shares the portal could not read were "
      + `left in place (the portal's operator restores them, then erase again): ${reissued.filter((r) => r.problem)
        .map((r) => `${r.old}: ${r.problem}`).join("; ")}`) : null,
    done.unpinned.kept.length ? h("p.warning", {}, `Left in place: ${done.unpinned.kept.map((k) => `${k.cid}: ${k.reason}`).join("; ")}`) : null),
  done.custodians ? receiptsView(done.custodians) : null);
}

/** Ask every custodian again for its (idempotent) erasure receipts: those that were down at the erase. */
async function collectReceipts(chain) {
  const found = await act("Collecting the custodians' receipts", () => destroyAtCustodians(chain.map((r) => r.recordId)));
  if (found) replace(statusBar(), receiptsView(found));
}

// --- consent -----------------------------------------------------------------------------------------

async function chainNow() {
  const block = await rpc("eth_getBlockByNumber", ["latest", false]);
  return Number.parseInt(block.timestamp, 16);
}

function typedData(primaryType, message) {
  const types = session.config.consent.types;
  const picked = { EIP712Domain: types.EIP712Domain, [primaryType]: types[primaryType] };
  if (primaryType === "Grant") picked.Categories = types.Categories;
  return { types: picked, primaryType, domain: session.config.consent.domain, message };
}

function relayerLine() {
  const relayer = session.config.relayer;
  return relayer ? `The consortium's relayer ${short(relayer)} sends it and pays the gas; you only sign (free).`
    : "This portal has no relayer: your wallet sends the transaction and you pay the gas.";
}

async function renderGrant() {
  const cats = session.config.consent.categories;
  const form = h("form", { id: "grant-form" },
    h("label", {}, "Grantee address", h("input", { name: "grantee", required: true, placeholder: "0x…", size: 44 })),
    h("fieldset", {}, h("legend", {}, "Categories"),
      cats.map((c) => h("label.check", {}, h("input", { type: "checkbox", name: "category", value: String(c.bit) }), c.name.replace("_", " ")))),
    h("fieldset", {}, h("legend", {}, "Access"),
      h("label.check", {}, h("input", { type: "radio", name: "access", value: "read", checked: true }), "read"),
      h("label.check", {}, h("input", { type: "radio", name: "access", value: "amend" }), "amend (write new records and versions)")),
    h("label", {}, "Until", h("input", { type: "date", name: "until", required: true })),
    h("label", {}, "Purpose", h("select", { name: "purpose" },
      session.config.consent.purposes.map((p) => h("option", { value: p }, p)))),
    h("label.check", {}, h("input", { type: "checkbox", name: "share", checked: true }),
      "Share the keys of my records in these categories (made in this browser, sealed to the grantee)"),
    audited() ? h("label.check", {}, h("input", { type: "checkbox", name: "audited", id: "grant-audited" }),
      `Release keys through the custodians (audited): ${session.custodians.threshold} of `
      + `${session.custodians.custodians.length} custodians must agree at each read, and each read is logged`) : null,
    h("button.primary", { type: "submit", id: "grant-submit" }, "Sign and grant"));
  const until = new Date(Date.now() + 30 * 86400_000);
  form.elements.until.value = until.toISOString().slice(0, 10);
  form.addEventListener("submit", (event) => { event.preventDefault(); grant(form); });
  replace(main(), h("section.card", { id: "grant-view" },
    h("h2", {}, "Grant access"),
    onChain("One consent in words your wallet shows (EIP-712): who, which categories, read or amend, until when, why.",
      "On chain: ConsentManager.grantBySig(...) emits AccessGranted with both addresses, the categories as bits, the expiry and the purpose.",
      "The key share holds only sealed keys; it is stored by the portal and its CID handed to the grantee.",
      audited() ? "Audited release: off chain and free. Key fragments are made in this browser, one sealed to each custodian; "
        + "your wallet signs one deposit per custodian. Nothing of it goes on chain." : null,
      relayerLine()),
    form));
}

async function keyShareFor(grantee, scopes) {
  const granteeKey = (await api.account(grantee)).x25519;
  if (!granteeKey) {
    throw new ApiError("KeyNotFound", `${grantee} has published no encryption key, so keys cannot be shared with them; `
      + "they publish one with `ehr keys publish` (or grant without sharing keys).");
  }
  await loadRecords();
  // as KeySharer.share: a record is shared only when all its categories are granted
  const mine = session.records.filter((r) => r.status === "active" && (BigInt(r.scope) & ~scopes) === 0n);
  const entries = [];
  const skipped = [];
  for (const record of mine) {
    try {
      const opened = await openRecord(record, session);
      entries.push({ binding: opened.binding, dataKey: opened.dataKey });
    } catch (error) {
      skipped.push(`${short(record.recordId)}: ${describeError(error)}`);
    }
  }
  if (entries.length === 0) return { cid: null, shared: 0, skipped };
  const bytes = await makeKeyShare({ patient: session.account, grantee, recipientX25519Public: hexToBytes(granteeKey.publicKey),
    keyVersion: granteeKey.version, entries, grantedScopes: scopes });
  const stored = await api.uploadKeyShare(bytes, await signedHeaders("store-key-share", hexOf(await sha256(bytes))));
  return { cid: stored.cid, shared: entries.length, skipped };
}

async function grant(form) {
  const grantee = form.elements.grantee.value.trim();
  const bits = [...form.querySelectorAll("input[name=category]:checked")].reduce((a, el) => a | BigInt(el.value), 0n);
  const access = form.querySelector("input[name=access]:checked").value;
  const purpose = form.elements.purpose.value;
  const ends = Math.floor(new Date(`${form.elements.until.value}T23:59:59Z`).getTime() / 1000);
  if (!/^0x[0-9a-fA-F]{40}$/.test(grantee)) return showError(new Error("Enter the grantee's address (0x and 40 hex digits)."), "Granting");
  if (bits === 0n) return showError(new Error("Choose at least one category."), "Granting");
  const result = await act("Granting", async () => {
    const now = await chainNow();
    if (!(ends > now)) throw new Error("Choose an end date in the future.");
    const granteeInfo = await api.account(grantee);
    const checksummed = granteeInfo.account;
    // The chain stores a grant to anyone and asks for membership only when the grantee acts.
    const member = granteeInfo.member;
    if (!member || member.suspended) {
      throw new ApiError("InvalidGrantee", `${checksummed} is ${member ? "a suspended" : "not a"} consortium member, `
        + "so a grant would open nothing for them. Nothing was granted.");
    }
    if (access === "amend" && !member.mayAmend) {
      throw new ApiError("InvalidGrantee", `${checksummed} is a ${member.role}; only a provider or a lab may amend `
        + "records, so grant read access instead. Nothing was granted.");
    }
    const viaCustodians = audited() && form.elements.audited.checked;
    if (viaCustodians && !granteeInfo.umbral) {
      throw new CustodianError(`${checksummed} has published no Umbral key, so custodians cannot release keys to them; `
        + "they publish one with `ehr custodian umbral-key` first. Nothing was granted.");
    }
    const sharing = access === "read" && form.elements.share.checked && !viaCustodians;
    if (sharing && !granteeInfo.x25519) {
      throw new ApiError("KeyNotFound", `${checksummed} has published no encryption key, so keys cannot be shared with `
        + "them; they publish one with `ehr keys publish` (or grant without sharing keys). Nothing was granted.");
    }
    const granted = await grantOnChain(checksummed, bits, access, ends, purpose, now);
    // A key share is a bearer capability: it is sealed only once the grant is in force on chain.
    let share = { cid: null, shared: 0, skipped: [] };
    if (sharing) {
      try {
        share = await keyShareFor(checksummed, bits);
      } catch (error) {
        share = { cid: null, shared: 0, skipped: [], failed: `${describeError(error)} The grant is in force; `
          + "grant again with the same terms to share the keys." };
      }
    }
    return { ...granted, share, release: viaCustodians ? { grantee: checksummed, scopes: bits, umbral: granteeInfo.umbral } : null };
  });
  if (!result) return;
  const released = result.release ? await releaseKeys(result.release) : null;
  replace(statusBar(), h("div.message.ok", { id: "grant-done" },
    result.note ? result.note : `Granted ${access} to ${short(grantee)} until ${when(ends)}: transaction ${short(result.tx.hash)} `
      + `(${result.tx.gasUsed} gas, paid by ${result.paidBy}).`,
    result.share.cid ? h("p", {}, "Key share for the grantee (they read with `ehr record get RECORD --key-share CID`): ",
      h("code", { id: "key-share" }, result.share.cid), ` — ${result.share.shared} record(s).`) : null,
    result.share.skipped.length ? h("p.warning", {}, `Not shared: ${result.share.skipped.join("; ")}`) : null,
    result.share.failed ? h("p.warning", { id: "share-failed" }, `Keys not shared: ${result.share.failed}`) : null), released);
}

async function grantOnChain(checksummed, bits, access, ends, purpose, now) {
  if (!session.config.relayer) {
    const tx = await sendAndWait("Granting", "ConsentManager", "grant",
      [checksummed, bits, session.config.access[access.toUpperCase()], BigInt(ends), purpose]);
    return { tx, paidBy: "you" };
  }
  const nonce = await readContract(session.config, "ConsentManager", "nonces", [session.account, checksummed]);
  const categories = Object.fromEntries(session.config.consent.categories.map((c) => [c.field, (bits & BigInt(c.bit)) !== 0n]));
  const doc = typedData("Grant", { patient: session.account, grantee: checksummed, categories, mayAmend: access === "amend",
    purpose, grantEndsAt: ends, nonce: Number(nonce), signatureValidUntil: now + 86400 });
  showInfo("Granting: sign the consent in your wallet (it shows the terms)…");
  const signature = await wallet.signTypedData(session.account, doc);
  showInfo("Granting: the relayer is sending your signed consent…");
  const relayed = await api.relay(doc, signature, null);
  return { tx: relayed.tx, paidBy: `the relayer ${short(relayed.relayer)}`, note: relayed.note };
}

async function renderGrants() {
  replace(main(), h("p", {}, "Loading your grants…"));
  const at = location.hash;
  const { grants, now, breakGlass } = await api.grants(session.account);
  if (location.hash !== at) return;
  replace(main(), h("section.card", { id: "grants-view" },
    h("h2", {}, "Active grants"),
    onChain("Revoking: one signed revocation (EIP-712) ends this grant at once; ConsentManager.revokeBySig emits AccessRevoked.",
      relayerLine()),
    grants.length === 0 ? h("p", { id: "no-grants" }, "No grant is in force.") :
      h("table", { id: "grants" },
        h("thead", {}, h("tr", {}, ["Grantee", "Categories", "Access", "Until", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, grants.map((g) => h("tr", { dataset: { grantee: g.grantee } },
          h("td.mono", {}, g.grantee, standing(g)), h("td", {}, g.categories.join(", ")), h("td", {}, g.access),
          h("td", {}, `${when(g.expiresAt)}${g.expiresAt - now < 86400 ? " (ends within a day)" : ""}`),
          h("td", {}, h("button.danger", { onclick: () => revoke(g.grantee) }, "Revoke")))))),
    h("h3", {}, "Emergency (break-glass) access"),
    breakGlass.length === 0 ? h("p", { id: "no-break-glass" }, "No break-glass request is pending or in force.") :
      h("table", { id: "break-glass" },
        h("thead", {}, h("tr", {}, ["Provider", "State", "Reason", "Requested", "Ends / confirm by"].map((t) => h("th", {}, t)))),
        h("tbody", {}, breakGlass.map((b) => h("tr", { class: "alert", dataset: { requester: b.requester } },
          h("td.mono", {}, b.requester),
          h("td", {}, b.state === "pending" ? "pending: awaits a second provider" : "active"),
          h("td", {}, String(b.reason)), h("td", {}, when(b.requestedAt)),
          h("td", {}, when(b.state === "pending" ? b.confirmBy : b.expiresAt))))))));
}

/** The chain checks membership whenever a grantee acts: terms held by a non-member or a suspended
 * member open nothing now, and open again on admission or reinstatement, unless revoked. */
function standing(grant) {
  const member = grant.member;
  if (grant.opensNothing) {
    return h("p.warning", { class: "opens-nothing" }, member ? "Suspended: opens nothing now, opens again if reinstated."
      : "Not a consortium member: opens nothing now, opens if admitted.");
  }
  if (grant.access === "amend" && member && !member.mayAmend) {
    return h("p.warning", { class: "opens-nothing" }, `A ${member.role}: may read, may not write or amend.`);
  }
  return null;
}

async function revoke(grantee) {
  const result = await act("Revoking", async () => {
    if (!session.config.relayer) {
      return { tx: await sendAndWait("Revoking", "ConsentManager", "revoke", [grantee]), paidBy: "you" };
    }
    const nonce = await readContract(session.config, "ConsentManager", "nonces", [session.account, grantee]);
    const doc = typedData("Revoke", { patient: session.account, grantee, nonce: Number(nonce),
      signatureValidUntil: (await chainNow()) + 86400 });
    showInfo("Revoking: sign the revocation in your wallet…");
    const signature = await wallet.signTypedData(session.account, doc);
    const relayed = await api.relay(doc, signature, null);
    return { tx: relayed.tx, paidBy: `the relayer ${short(relayed.relayer)}`, note: relayed.note };
  });
  if (!result) return;
  await renderGrants();
  replace(statusBar(), h("div.message.ok", { id: "revoke-done" }, result.note ||
    `Revoked ${short(grantee)}: transaction ${short(result.tx.hash)} (${result.tx.gasUsed} gas, paid by ${result.paidBy}).`));
}

// --- timeline -------------------------------------------------------------------------------------------

async function renderTimeline() {
  replace(main(), h("p", {}, "Reading the chain…"));
  const at = location.hash;
  const { entries, alerts } = await api.timeline(session.account);
  if (location.hash !== at) return;
  replace(main(), h("section.card", { id: "timeline-view" },
    h("h2", {}, "Who opened my records, and when"),
    h("p", {}, "Every grant, revocation, write, read request and break-glass on your records, from the chain. "
      + "Rows the monitor flags (read after revoke, break-glass, off-hours, bursts) are highlighted."),
    h("button", { id: "export-fhir", onclick: exportFhir }, "Download as FHIR AuditEvents"),
    audited() ? h("button", { id: "show-releases", onclick: showReleases },
      "Show which custodians released keys (your wallet signs one audit query per custodian; off chain, free)") : null,
    alerts.length ? h("div.message.warning", { id: "alerts" }, `${alerts.length} alert(s): `,
      h("ul", {}, alerts.map((a) => h("li", {}, `[${a.severity}] ${a.rule}: ${a.message}`)))) : null,
    h("table", { id: "timeline" },
      h("thead", {}, h("tr", {}, ["Time", "What", "Who", "Record", "Detail"].map((t) => h("th", {}, t)))),
      h("tbody", {}, entries.map((e) => h("tr", { class: e.alerts.length ? "alert" : e.outcome === "failed" ? "failed" : "",
        dataset: { event: e.name, tx: (e.txHash || "").toLowerCase() } },
        h("td", {}, when(e.timestamp)),
        h("td", {}, e.name === "AccessRequested" ? "Opened (access requested)" : e.name),
        h("td", { title: e.actor || "" }, e.actor === session.account ? "you" : short(e.actor || e.sender)),
        h("td.mono", {}, e.recordId ? short(e.recordId) : ""),
        h("td", {}, e.detail, e.alerts.map((a) => h("div.alert-note", {}, `⚠ ${a.rule}: ${a.message}`)))))))));
}

async function exportFhir() {
  const bundle = await act("Exporting", () => api.timelineFhir(session.account));
  if (!bundle) return;
  const bytes = new TextEncoder().encode(JSON.stringify(bundle, null, 2));
  const link = download(bytes, "application/fhir+json", "audit-events.json");
  link.id = "fhir-download";
  replace(statusBar(), h("div.message.ok", {}, `${bundle.entry.length} FHIR resources (AuditEvent and Consent; no health data): `, link));
}

start();
