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

/**
 * A problem response as the OpenAPI document should describe it: under the
 * media type it is sent with (`application/problem+json`), not Fastify's
 * default `application/json`, so generated clients and schemathesis read
 * the real content type.
 */
export const problemResponse = {
  description: 'A problem (RFC 9457)',
  content: { 'application/problem+json': { schema: problemSchema } },
};

/** `problemResponse` for each status, for spreading into a route's `response` map. */
export function problemResponses<const S extends number>(...statuses: S[]): Record<S, typeof problemResponse> {
  return Object.fromEntries(statuses.map((status) => [status, problemResponse])) as Record<S, typeof problemResponse>;
}
