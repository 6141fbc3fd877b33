#!/usr/bin/env node
// Presents the npm `solc` package (solcjs, WebAssembly) with the command-line surface of native solc
// that py-solc-x, ape-solidity and slither use: `--version` and `--standard-json` on stdin.
// Imports are read from disk relative to --base-path / --include-path / the working directory,
// and only under the allowed paths, like native solc.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const args = process.argv.slice(2);

function fullVersion() {
  // native format: 0.8.28+commit.7893614a.Linux.g++
  return solc.version().replace("Emscripten.clang", "Linux.g++");
}

if (args.includes("--version")) {
  process.stdout.write("solc, the solidity compiler commandline interface\nVersion: " + fullVersion() + "\n");
  process.exit(0);
}

if (!args.includes("--standard-json")) {
  process.stderr.write("solcjs-shim: only --version and --standard-json are supported\n");
  process.exit(2);
}

function optionValues(name) {
  const values = [];
  args.forEach((arg, i) => {
    if (arg === name && i + 1 < args.length) values.push(...args[i + 1].split(","));
    else if (arg.startsWith(name + "=")) values.push(...arg.slice(name.length + 1).split(","));
  });
  return values.filter(Boolean).map((p) => path.resolve(p));
}

const roots = [...optionValues("--base-path"), ...optionValues("--include-path"), process.cwd()];
const allowed = [...roots, ...optionValues("--allow-paths")];

function isAllowed(file) {
  return allowed.some((dir) => file === dir || file.startsWith(dir + path.sep));
}

function findImports(importPath) {
  const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map((r) => path.join(r, importPath));
  for (const candidate of candidates) {
    const file = path.resolve(candidate);
    if (isAllowed(file) && fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: "File not found: " + importPath };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  process.stdout.write(solc.compile(input, { import: findImports }));
});
