import { createHash } from 'node:crypto';

/**
 * The workflow ID of (tenant, type, key). Deterministic, so every repeat maps
 * to the same execution; the key is hashed, so any key the contract allows
 * (spaces, slashes, 255 characters) gives a short, safe ID, and tenant A's key
 * can never collide with tenant B's. Operators find a run by key through the
 * OnceflowIdempotencyKey search attribute, not by reading the ID.
 */
export function operationWorkflowId(tenantId: string, operationType: string, idempotencyKey: string): string {
  const keyHash = createHash('sha256').update(idempotencyKey, 'utf8').digest('hex').slice(0, 32);
  return `onceflow/${tenantId}/${operationType}/${keyHash}`;
}
