import { StartupError } from '../src/process/entrypoint';

/**
 * Thrown when the local stack cannot start. `message` is the one line shown to
 * the user; `hint` says how to fix it. Never printed with a stack trace: it is a
 * StartupError, so the runtime's entrypoint prints it without knowing dev/.
 */
export class LocalStackError extends StartupError {
  override readonly name: string = 'LocalStackError';
}
