// Hardhat 3 configuration for fedledger.
//
// The compiler is the solc-js build shipped by the npm `solc` package, so
// compiling never downloads anything (see docs/decisions.md).
import { createRequire } from "node:module";
import { defineConfig } from "hardhat/config";
import hardhatToolboxMochaEthers from "@nomicfoundation/hardhat-toolbox-mocha-ethers";

const require = createRequire(import.meta.url);
const solcPackage = require("solc/package.json");

// These settings are mirrored by coordinator/chain/_solc.py (py-solc-x); a test
// checks both produce the same runtime bytecode.
export const SOLC_SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
};

export default defineConfig({
  plugins: [hardhatToolboxMochaEthers],
  solidity: {
    profiles: {
      default: {
        version: solcPackage.version,
        path: require.resolve("solc/soljson.js"),
        settings: SOLC_SETTINGS,
      },
    },
  },
  test: {
    solidity: {
      fsPermissions: { readFile: ["./contracts/test/vectors/encoding.json"] },
      // Pinned seed: runs are reproducible. CI (CI=true) raises the counts.
      fuzz: { runs: process.env.CI ? 1024 : 256, seed: "0x6665646c6564676572" },
      invariant: { runs: process.env.CI ? 128 : 64, depth: 120 },
    },
  },
  paths: {
    sources: "./contracts",
    tests: { mocha: "./tests/contracts", solidity: "./contracts/test" },
    artifacts: "./build/artifacts",
    cache: "./build/cache",
  },
});
