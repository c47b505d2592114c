#!/usr/bin/env node
// The `onceflow` command: the compiled CLI when the package is built (dist/),
// otherwise the TypeScript source through tsx's CommonJS register API.
const { existsSync } = require('node:fs');
const path = require('node:path');

const built = path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js');
if (existsSync(built)) {
  require(built);
} else {
  require('tsx/cjs/api').register();
  require(path.join(__dirname, '..', 'src', 'cli', 'main.ts'));
}
