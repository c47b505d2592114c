import { ConfigError, strictSecrets } from '../config';
import { AesGcmPayloadCodec, type PayloadKey } from './codec';

/**
 * ONCEFLOW_PAYLOAD_KEYS → the codec, or undefined (payloads in clear) when
 * unset outside strict mode. Throws with a message naming the variable when a
 * key is malformed, or when it is unset under NODE_ENV=production or
 * ONCEFLOW_STRICT_SECRETS: Temporal's history would otherwise hold every
 * prompt and answer in clear.
 */
export function payloadCodecFromConfig(config: {
  ONCEFLOW_PAYLOAD_KEYS?: string;
  ONCEFLOW_STRICT_SECRETS?: boolean;
  NODE_ENV?: string;
}): AesGcmPayloadCodec | undefined {
  const raw = config.ONCEFLOW_PAYLOAD_KEYS;
  if (!raw) {
    if (strictSecrets(config)) {
      throw new ConfigError([
        {
          variable: 'ONCEFLOW_PAYLOAD_KEYS',
          message: 'required when NODE_ENV=production or ONCEFLOW_STRICT_SECRETS is on, or Temporal keeps every prompt and answer in clear (e.g. `k1:` followed by `openssl rand -hex 32`)',
        },
      ]);
    }
    return undefined;
  }
  try {
    return new AesGcmPayloadCodec(parsePayloadKeys(raw));
  } catch (error) {
    throw new ConfigError([{ variable: 'ONCEFLOW_PAYLOAD_KEYS', message: (error as Error).message.replace(/^ONCEFLOW_PAYLOAD_KEYS: /, '') }]);
  }
}

/** `id:key,id:key`; key as 64 hex characters or base64 of 32 bytes. */
export function parsePayloadKeys(raw: string): PayloadKey[] {
  const keys = raw
    .split(',')
    .map((pair) => pair.trim())
    .filter(Boolean)
    .map((pair) => {
      const separator = pair.indexOf(':');
      const id = pair.slice(0, separator);
      const value = pair.slice(separator + 1);
      if (separator <= 0 || !/^[A-Za-z0-9_.-]{1,32}$/.test(id)) throw new Error(`ONCEFLOW_PAYLOAD_KEYS: expected "keyId:key" pairs (id of 1-32 [A-Za-z0-9_.-]), got "${pair.replace(/:.*/, ':…')}"`);
      const key = /^[0-9a-f]{64}$/i.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
      if (key.length !== 32) throw new Error(`ONCEFLOW_PAYLOAD_KEYS: key ${id} must be 32 bytes, as 64 hex characters or base64`);
      return { id, key };
    });
  if (keys.length === 0) throw new Error('ONCEFLOW_PAYLOAD_KEYS: no key given');
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new Error('ONCEFLOW_PAYLOAD_KEYS: two keys share an id');
  return keys;
}
