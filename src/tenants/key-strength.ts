/** The least estimated entropy of an API key provisioned from configuration when secrets are strict. */
export const MIN_API_KEY_ENTROPY_BITS = 128;

/**
 * An upper estimate of a key's entropy in bits: its length times log2 of the
 * alphabet it draws from (16 for a hex string; otherwise the sum of its
 * character classes: lowercase, uppercase, digits, other printable ASCII).
 * A key of fewer than 8 distinct characters counts only those, so `aaaa…` or
 * `abab…` does not pass on length alone. An estimate, not a measure: it
 * refuses the short and plainly patterned keys a guesser tries first; 32
 * random hex characters score 128, a key from `onceflow tenants create` 256.
 */
export function estimateKeyEntropyBits(apiKey: string): number {
  let alphabet = 0;
  if (/^[0-9a-f]+$/i.test(apiKey)) alphabet = 16;
  else {
    if (/[a-z]/.test(apiKey)) alphabet += 26;
    if (/[A-Z]/.test(apiKey)) alphabet += 26;
    if (/[0-9]/.test(apiKey)) alphabet += 10;
    if (/[^a-zA-Z0-9]/.test(apiKey)) alphabet += 33;
  }
  const distinct = new Set(apiKey).size;
  return apiKey.length * Math.log2(Math.max(2, distinct < 8 ? distinct : alphabet));
}

/** The tenant ids whose configured key is too weak to be trusted in production. */
export function weakTenantKeys(tenants: readonly { tenantId: string; apiKey: string }[]): string[] {
  return tenants.filter((t) => estimateKeyEntropyBits(t.apiKey) < MIN_API_KEY_ENTROPY_BITS).map((t) => t.tenantId);
}
