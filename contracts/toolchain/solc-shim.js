#!/usr/bin/env node
// A `solc`-compatible command line over the pinned npm `solc` (solcjs) package, so that
// py-solc-x can use it as its `solc_binary`. Supports exactly what py-solc-x asks for:
//   solc-shim.js --version
//   solc-shim.js --standard-json [ignored flags...]   (standard JSON on stdin, result on stdout)
// Imports must already be inlined into the standard-JSON `sources` (the Python side does that),
// so no file system access is granted to the compiler.
"use strict";
const solc = require("solc");

const args = process.argv.slice(2);
if (args.includes("--version")) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solc-shim: only --version and --standard-json are supported\n");
  process.exit(2);
}
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const input = Buffer.concat(chunks).toString("utf8");
  const output = solc.compile(input, {
    import: (path) => ({ error: `import not inlined: ${path}` }),
  });
  process.stdout.write(output);
});
