// The views of audited key release (portal/src/custodians.js does the work): releasing keys after a
// grant (and again, on retry), the custodians' erasure receipts, rotation's re-issue, and which
// custodians released a key for each read in the timeline.
import { api } from "./api.js";
import { delegate, destroyEverywhere, loadUmbral, releases } from "./custodians.js";
import { h, replace, short, when } from "./dom.js";
import { hexToBytes, loadRecords, refreshAccount, session } from "./session.js";
import { act, describeError, showInfo, statusBar } from "./ui.js";
import * as wallet from "./wallet.js";

/** As AuditedSharing.rotate: the custodians destroy the old version's fragments (receipts checked
 * here), and grantees whose grant still covers the record get fragments of the new version. */
export async function rotateAtCustodians(old, newId) {
  const destroyed = await destroyAtCustodians([old.recordId]);
  await loadRecords();
  const fresh = session.records.find((r) => r.recordId === newId);
  const { grants } = await api.grants(session.account);
  const covering = grants.filter((g) => old.categories.every((c) => g.categories.includes(c)));
  const reissued = [];
  const failed = [];
  for (const g of covering) {
    const info = await api.account(g.grantee);
    if (!info.umbral || !fresh) continue;
    const done = await delegate({ listing: session.custodians, account: session.account, keys: session.keys,
      umbralVersion: session.info.umbral.version, grantee: info.account, receivingPublic: hexToBytes(info.umbral.publicKey),
      records: [fresh], signTypedData: (typed) => wallet.signTypedData(session.account, typed),
      progress: (text) => showInfo(`Re-issuing key fragments: ${text}`) }).catch((error) => ({ error }));
    if (done.error || done.stored.length < done.threshold || done.skipped.length) {
      failed.push(`${short(g.grantee)}: ${done.error ? describeError(done.error) : done.skipped.length
        ? done.skipped[0].reason : `only ${done.stored.length} custodian(s) took the fragments`}`);
    } else {
      reissued.push(g.grantee);
    }
  }
  return { destroyed, reissued, failed };
}

export async function destroyAtCustodians(recordIds) {
  session.custodians = await api.custodians();
  return destroyEverywhere({ listing: session.custodians, account: session.account, recordIds,
    signTypedData: (typed) => wallet.signTypedData(session.account, typed),
    progress: (text) => showInfo(`Destroying key fragments: ${text}`) });
}

/** The custodians' erasure receipts, each checked in this browser (a bad one says NOT verified). */
export function receiptsView({ receipts, unavailable }) {
  return h("section.receipts", { id: "custodian-receipts" },
    h("h3", {}, "Key custodians' erasure receipts"),
    h("table", { id: "receipts" },
      h("thead", {}, h("tr", {}, ["Custodian", "Record", "Fragments destroyed", "Remaining", "Time", "Signature"].map((t) => h("th", {}, t)))),
      h("tbody", {}, receipts.map((r) => h("tr", { class: r.verified ? "verified" : "not-verified",
        dataset: { custodian: r.custodian, record: r.recordId, verified: String(r.verified) } },
        h("td.mono", {}, short(r.custodian)), h("td.mono", {}, short(r.recordId)), h("td", {}, String(r.destroyed)),
        h("td", {}, String(r.remaining)), h("td", {}, Number.isFinite(r.erasedAt) ? when(r.erasedAt) : "?"),
        h("td", {}, r.verified ? "verified: signed by this custodian" : `NOT verified: ${r.why}`))))),
    unavailable.length ? h("p.warning", { id: "receipts-missing" }, "No receipt yet from: "
      + `${[...new Set(unavailable.map((u) => short(u.custodian)))].join(", ")} — they destroy the fragments when they see the `
      + "tombstone on chain; ask again from this record's page to collect their receipts.") : null);
}

/** Deposit key fragments for a grant already on chain (again, on retry: a custodian keeps one
 * fragment per record and grantee, so a retry replaces, never duplicates). */
export async function releaseKeys(release) {
  const { grantee, scopes, umbral: granteeUmbral } = release;
  const retry = h("button", { id: "release-again",
    onclick: async () => { const again = await releaseKeys(release); replace(statusBar(), again); } }, "Release the keys again");
  let done;
  try {
    showInfo("Releasing keys through the custodians…");
    await loadUmbral();
    session.custodians = await api.custodians();
    await loadRecords();
    await refreshAccount();
    const records = session.records.filter((r) => r.status === "active" && (BigInt(r.scope) & ~scopes) === 0n);
    done = await delegate({ listing: session.custodians, account: session.account, keys: session.keys,
      umbralVersion: session.info.umbral ? session.info.umbral.version : 0, grantee,
      receivingPublic: hexToBytes(granteeUmbral.publicKey), records,
      signTypedData: (typed) => wallet.signTypedData(session.account, typed),
      progress: (text) => showInfo(`Releasing keys: ${text}`) });
  } catch (error) {
    console.error(error);
    return h("div.message.error", { role: "alert", id: "release-failed" },
      `The grant is on chain, but the keys are not released yet: ${describeError(error)} `
      + "Retry when the custodians are back (a retry replaces fragments, it never adds more): ", retry);
  }
  const skipped = done.skipped.length ? h("div.message.warning", { id: "release-skipped" },
    `Skipped ${done.skipped.length} record(s), no fragment made: `,
    h("ul", {}, done.skipped.map((s) => h("li", { dataset: { record: s.recordId } }, `${short(s.recordId)}: ${s.reason}`)))) : null;
  const failures = [...done.unavailable, ...done.refused].map((f) => h("li", {}, `${short(f.custodian)}: ${f.reason}`));
  if (done.shared.length && done.stored.length < done.threshold) {
    return h("div", {}, h("div.message.error", { role: "alert", id: "release-failed" },
      `The grant is on chain, but the keys are not released yet: only ${done.stored.length} custodian(s) took the fragments, `
      + `fewer than the ${done.threshold} a read needs. Retry when the custodians are back (a retry replaces fragments, `
      + "it never adds more): ", retry, h("ul", {}, failures)), skipped);
  }
  return h("div", {}, h("div.message.ok", { id: "release-done" },
    `Keys released through the custodians (off chain, free): fragments of ${done.shared.length} record(s); `
    + `${done.threshold} custodians must agree at each read. Taken by: `,
    h("ul", { id: "release-custodians" }, done.stored.map((c) => h("li.mono", {}, c))),
    failures.length ? h("div.warning", {}, "Did not take them: ", h("ul", {}, failures)) : null), skipped);
}

/** Mark each read with the custodians that released a key fragment for it (from their own logs). */
export async function showReleases() {
  const found = await act("Asking the custodians", async () => {
    session.custodians = await api.custodians();
    return releases({ listing: session.custodians, account: session.account,
      signTypedData: (typed) => wallet.signTypedData(session.account, typed) });
  });
  if (!found) return;
  for (const row of document.querySelectorAll("#timeline tr[data-event=AccessRequested]")) {
    const by = found.released.get(row.dataset.tx) || [];
    row.lastElementChild.append(h("div.released", { dataset: { releasedBy: by.join(",") } }, by.length
      ? `Key released by ${by.length} custodian(s): ${by.map(short).join(", ")}` : "No custodian released a key for this request"));
  }
  statusBar().append(h("div.message.info", { id: "releases-done" }, `${found.released.size} read(s) answered by custodians`
    + (found.unavailable.length ? `; no answer from ${found.unavailable.map(short).join(", ")}` : "") + "."));
}
