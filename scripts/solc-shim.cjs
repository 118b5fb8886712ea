// Minimal solc command line over solc-js, for py-solc-x (see scripts/solc).
// It calls solc-js's compile() directly, so stdout carries only the JSON
// (the solcjs CLI prints ">>> ..." lines before it).
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const solc = require(path.join(__dirname, "..", "node_modules", "solc"));

const args = process.argv.slice(2);
if (args.includes("--version")) {
  process.stdout.write(
    "solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n",
  );
  process.exit(0);
}
if (args.includes("--help")) {
  process.stdout.write("solc (solc-js shim): supports --version and --standard-json only\n");
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solc shim: only --version and --standard-json are supported\n");
  process.exit(2);
}
const bases = [];
for (const flag of ["--base-path", "--allow-paths", "--include-path"]) {
  const i = args.indexOf(flag);
  if (i >= 0 && args[i + 1]) bases.push(...args[i + 1].split(","));
}
bases.push(process.cwd());
function findImports(name) {
  for (const base of bases) {
    const p = path.resolve(base, name);
    if (fs.existsSync(p)) return { contents: fs.readFileSync(p, "utf8") };
  }
  return { error: "File not found: " + name };
}
const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
