// Jest's node environment gives each test file its own global object, which
// lacks the Undici global dispatcher that Node's fetch installs on the real
// global. @google/genai looks it up there for every request; hand the real one
// through so the SDK runs under jest exactly as it does in production.
const { TestEnvironment } = require('jest-environment-node');

const UNDICI_GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

class OnceflowNodeEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    if (!globalThis[UNDICI_GLOBAL_DISPATCHER]) new Headers(); // Node initialises Undici lazily
    this.global[UNDICI_GLOBAL_DISPATCHER] = globalThis[UNDICI_GLOBAL_DISPATCHER];
  }
}

module.exports = OnceflowNodeEnvironment;
