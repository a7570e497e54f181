#!/usr/bin/env node
// The official solc-js (npm "solc", pinned in package.json) behind the command-line surface that
// py-solc-x drives on a native solc: `--version`, and `--standard-json` reading the compiler input
// on stdin and writing the output to stdout. Imports resolve like native solc's: relative to
// --base-path, then each --include-path, never outside them.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

function parseArguments(argv) {
  const options = { standardJson: false, version: false, roots: [] };
  const valueFlags = new Set(["--base-path", "--include-path", "--allow-paths"]);
  for (let index = 0; index < argv.length; index += 1) {
    const flag = argv[index];
    if (flag === "--version") options.version = true;
    else if (flag === "--standard-json") options.standardJson = true;
    else if (valueFlags.has(flag)) {
      const value = argv[(index += 1)];
      if (flag !== "--allow-paths") options.roots.push(path.resolve(value));
    } else {
      throw new Error(`solcjs shim: unsupported argument ${flag}`);
    }
  }
  return options;
}

function importResolver(roots) {
  return (unitName) => {
    for (const root of roots) {
      const candidate = path.resolve(root, unitName);
      if (!candidate.startsWith(root + path.sep)) continue;
      if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
    }
    return { error: `File not found inside ${roots.join(", ")}: ${unitName}` };
  };
}

function main() {
  const options = parseArguments(process.argv.slice(2));
  if (options.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }
  if (!options.standardJson) throw new Error("solcjs shim: pass --version or --standard-json");
  const input = fs.readFileSync(0, "utf8");
  const roots = options.roots.length ? options.roots : [process.cwd()];
  process.stdout.write(solc.compile(input, { import: importResolver(roots) }));
}

try {
  main();
} catch (error) {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}
