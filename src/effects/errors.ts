import type { EffectKey } from './guard';
import { AppError, messageOf } from '../errors';

/**
 * Thrown by guardForeignCall when PostgreSQL failed around the foreign call.
 * `phase` says whether money may have been spent: `before` the call (nothing
 * was called; a retry is free) or while `storing` its answer (the call was
 * made and paid for, and its answer is lost: a retry calls again).
 */
export class GuardDatabaseError extends AppError<{ operationId: string; step: string; phase: 'before' | 'storing' }> {
  override readonly name = 'GuardDatabaseError';
  constructor(
    readonly key: EffectKey,
    readonly phase: 'before' | 'storing',
    options: { cause: unknown },
  ) {
    super(`${phase === 'before' ? 'before calling' : 'storing the answer of'} ${key.step}: ${messageOf(options.cause)}`, {
      context: { operationId: key.operationId, step: key.step, phase },
      cause: options.cause,
    });
  }
}

/**
 * Thrown by a ForeignCall's `claim` hook to refuse the call (a spend cap
 * reached): nothing was called, and nothing the transaction it was thrown in
 * reserved was committed. The guard rethrows it unchanged, never as a
 * GuardDatabaseError.
 */
export abstract class CallRefusedError<TContext extends Record<string, unknown> = Record<string, unknown>> extends AppError<TContext> {}
