import { randomBytes } from 'node:crypto';
import type { Pool } from '../../src/db/pool';

/**
 * Makes PostgreSQL itself refuse inserts into `table` for the operations whose
 * prompt contains `marker` (a BEFORE INSERT trigger raising disk_full), so an
 * activity's write fails for real while every other test's rows go through.
 * Returns the function that removes the trigger.
 */
export async function refuseInserts(pool: Pool, options: { table: 'gemini_attempts' | 'gemini_interactions' | 'effects' | 'usage_ledger'; marker: string }): Promise<() => Promise<void>> {
  const name = `refuse_${options.table}_${randomBytes(4).toString('hex')}`;
  const marker = options.marker.replace(/'/g, "''");
  await pool.query(`
    CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM operations WHERE operation_id = NEW.operation_id AND input->>'prompt' LIKE '%${marker}%') THEN
        RAISE EXCEPTION 'injected by the test: % refused', TG_TABLE_NAME USING ERRCODE = 'disk_full';
      END IF;
      RETURN NEW;
    END $$`);
  await pool.query(`CREATE TRIGGER ${name} BEFORE INSERT ON ${options.table} FOR EACH ROW EXECUTE FUNCTION ${name}()`);
  return async () => {
    await pool.query(`DROP TRIGGER IF EXISTS ${name} ON ${options.table}`);
    await pool.query(`DROP FUNCTION IF EXISTS ${name}()`);
  };
}
