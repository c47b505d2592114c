/**
 * AES-256-GCM encryption of every Temporal payload (workflow and activity
 * inputs and results, summaries), so prompts and generated text never sit in
 * clear in Temporal's history or reach whoever can open its UI. Runs in the
 * client and in the worker outside the workflow sandbox (a PayloadCodec is
 * not part of the workflow bundle), so workflow code stays deterministic.
 *
 * Format: the whole protobuf of the original payload, sealed; metadata
 * `encoding: binary/encrypted` and `encryption-key-id: <id>`, the id bound as
 * additional data so a payload cannot be moved under another key's label.
 * Data: 12-byte nonce, ciphertext, 16-byte tag.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { AppError } from '../errors';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface PayloadKey {
  /** Short label stored with each payload; names the key that decrypts it. */
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

/** Thrown when a payload is sealed with a key this process does not have, or was tampered with. */
export class PayloadDecryptionError extends AppError<{ keyId: string }> {
  override readonly name = 'PayloadDecryptionError';
  constructor(
    readonly keyId: string,
    message: string,
    options?: { cause: unknown },
  ) {
    super(message, { context: { keyId }, cause: options?.cause });
  }
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly current: PayloadKey;
  private readonly byId: ReadonlyMap<string, Buffer>;

  /** `keys[0]` encrypts; every key decrypts what was sealed with it (rotation). */
  constructor(keys: readonly PayloadKey[]) {
    if (keys.length === 0) throw new Error('at least one payload key is needed');
    for (const { id, key } of keys) if (key.length !== 32) throw new Error(`payload key ${id} must be 32 bytes`);
    this.current = keys[0]!;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const plaintext = temporal.api.common.v1.Payload.encode(payload).finish();
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', this.current.key, nonce);
      cipher.setAAD(Buffer.from(this.current.id, 'utf8'));
      const sealed = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: { [METADATA_ENCODING_KEY]: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(this.current.id) },
        data: new Uint8Array(sealed),
      };
    });
  }

  /** Payloads that were never encrypted (histories from before encryption was turned on) pass through as they are. */
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      if (text(payload.metadata?.[METADATA_ENCODING_KEY]) !== ENCRYPTED_ENCODING) return payload;
      const keyId = text(payload.metadata?.[KEY_ID_METADATA]) ?? '';
      const key = this.byId.get(keyId);
      if (!key) throw new PayloadDecryptionError(keyId, `payload sealed with key "${keyId}", which is not among ONCEFLOW_PAYLOAD_KEYS`);
      const data = Buffer.from(payload.data ?? new Uint8Array());
      if (data.length < NONCE_BYTES + TAG_BYTES) throw new PayloadDecryptionError(keyId, 'encrypted payload too short');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE_BYTES));
        decipher.setAAD(Buffer.from(keyId, 'utf8'));
        decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
        const plaintext = Buffer.concat([decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)), decipher.final()]);
        return temporal.api.common.v1.Payload.decode(plaintext) as Payload;
      } catch (cause) {
        throw new PayloadDecryptionError(keyId, `payload sealed with key "${keyId}" does not decrypt (tampered, or a different key under that id)`, { cause });
      }
    });
  }
}

function utf8(value: string): Uint8Array {
  return new Uint8Array(Buffer.from(value, 'utf8'));
}

function text(value: Uint8Array | null | undefined): string | undefined {
  return value ? Buffer.from(value).toString('utf8') : undefined;
}
