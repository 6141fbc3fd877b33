// What the page shows and how it reports: the status line, progress, errors for people, and the
// "what goes on chain, and who pays" box every action carries.
import { ApiError } from "./api.js";
import { CustodianError } from "./custodians.js";
import { h, replace } from "./dom.js";
import { VerificationError } from "./records.js";
import * as wallet from "./wallet.js";

export const main = () => document.getElementById("main");

export const statusBar = () => document.getElementById("status");

export function describeError(error) {
  if (error instanceof ApiError || error instanceof wallet.WalletError || error instanceof VerificationError
    || error instanceof CustodianError) {
    return error.message;
  }
  if (error && error.name && error.message) return `${error.message}`;
  return String(error);
}

export function showError(error, context) {
  console.error(error);
  replace(statusBar(), h("div.message.error", { role: "alert" },
    h("strong", {}, context ? `${context}: ` : "Something went wrong: "), describeError(error)));
}

export function showInfo(text) {
  replace(statusBar(), h("div.message.info", { role: "status" }, text));
}

export function clearStatus() {
  replace(statusBar());
}

/** Runs an action with a progress line; its failure is shown, never a blank page. */
export async function act(label, fn) {
  showInfo(`${label}…`);
  try {
    const result = await fn();
    clearStatus();
    return result;
  } catch (error) {
    showError(error, label);
    return undefined;
  }
}

export function onChain(...lines) {
  return h("aside.onchain", {}, h("h3", {}, "What goes on chain, and who pays"), h("ul", {}, lines.map((l) => h("li", {}, l))));
}
