/**
 * The `onceflow` operator CLI.
 *
 * Exit codes (scripts may rely on them): 0 ok · 1 failure (an error, a failed
 * doctor check, a watched operation that failed) · 2 usage or configuration
 * error · 3 not found · 4 timed out. Every command that shows data prints a
 * table, or JSON with `--json`.
 */
import { Command, CommanderError } from 'commander';
import { budgetsCommand } from './commands/budgets';
import { doctorCommand } from './commands/doctor';
import { keysCommand } from './commands/keys';
import { opsCommand } from './commands/ops';
import { outboxCommand } from './commands/outbox';
import { migrateCommand, startCommand } from './commands/stack';
import { tenantsCommand } from './commands/tenants';
import { exitCodeFor } from './errors';

export function buildProgram(): Command {
  const program = new Command('onceflow')
    .description('Idempotent AI operations on Temporal and PostgreSQL')
    .showHelpAfterError()
    .addHelpText('after', '\nExit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 not found, 4 timed out.');
  for (const command of [startCommand(), migrateCommand(), opsCommand(), keysCommand(), tenantsCommand(), budgetsCommand(), outboxCommand(), doctorCommand()]) {
    program.addCommand(command);
  }
  // Commander exits 1 on usage errors; ours is 2, so scripts can tell "wrong call" from "it failed".
  const override = (command: Command) => {
    command.exitOverride();
    command.commands.forEach(override);
  };
  override(program);
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    // Commander has already printed its own message (or the help text).
    if (!(error instanceof CommanderError)) process.stderr.write(`onceflow: ${(error as Error)?.message ?? String(error)}\n`);
    process.exitCode = exitCodeFor(error);
  });
