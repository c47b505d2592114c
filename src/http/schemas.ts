import { z } from 'zod';

/** An RFC 9457 problem body; routes add members such as `idempotencyKey` or `issues`. */
export const problemSchema = z.looseObject({
  type: z.string().url(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  idempotencyKey: z.string().optional(),
  operationType: z.string().optional(),
});
