#!/usr/bin/env node
// Runs the compiled CLI when the package is built, the TypeScript source through tsx otherwise.
const { existsSync } = require('node:fs');
const path = require('node:path');
const built = path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js');
if (existsSync(built)) {
  require(built);
} else {
  require('tsx/cjs');
  require(path.join(__dirname, '..', 'src', 'cli', 'main.ts'));
}
