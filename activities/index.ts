/**
 * createActivities(deps): the only place activities are assembled. Every
 * activity is built from small injected dependencies; nothing is a module-level singleton.
 */
import type pg from 'pg';
import type { Logger } from '../src/observability/logger';
import { createCompleteOperation } from './complete-operation';

export interface ActivityDeps {
  pool: pg.Pool;
  logger: Logger;
}

export function createActivities(deps: ActivityDeps) {
  return {
    completeOperation: createCompleteOperation(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
