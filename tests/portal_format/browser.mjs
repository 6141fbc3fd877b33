// Browser entry of the format tests, bundled by esbuild: exposes runOps to Playwright's evaluate.

import { runOps } from "./ops.mjs";

globalThis.runOps = runOps;
document.title = "format tests ready";
