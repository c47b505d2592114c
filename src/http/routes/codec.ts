import type { PayloadCodec } from '@temporalio/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { bearerMatches } from '../../observability/metrics-server';
import { PayloadDecryptionError } from '../../temporal/codec';
import { problems } from '../problems';

export interface CodecRoutesOptions {
  codec: PayloadCodec;
  /** ONCEFLOW_CODEC_TOKEN: as `Authorization: Bearer <token>`, or as the password of HTTP Basic (what a browser sends once the operator logged in at GET /codec). */
  token: string;
  /** The one origin allowed to call from a browser (ONCEFLOW_CODEC_CORS_ORIGIN, default the Temporal UI's). */
  corsOrigin: string;
}

/** The Temporal UI's codec protocol: protobuf JSON payloads, metadata values and data base64. */
const jsonPayload = z.object({ metadata: z.record(z.string(), z.string()).optional(), data: z.string().optional() });
const payloadList = z.object({ payloads: z.array(jsonPayload).max(10_000) });

/**
 * The codec endpoint the Temporal UI (and `temporal workflow show
 * --codec-endpoint`) is pointed at, so an operator reads encrypted histories.
 * It decrypts anything sealed with our keys, so it is an operator's door:
 * without the token every call is 401, and a browser may call it only from
 * the configured UI origin.
 */
export const codecRoutes: FastifyPluginAsyncZod<CodecRoutesOptions> = async (app, options) => {
  const cors = (reply: FastifyReply) =>
    reply
      .header('Access-Control-Allow-Origin', options.corsOrigin)
      .header('Access-Control-Allow-Credentials', 'true')
      .header('Access-Control-Allow-Headers', 'authorization, content-type, x-namespace')
      .header('Access-Control-Allow-Methods', 'POST, OPTIONS')
      .header('Vary', 'Origin');

  const authorize = (request: FastifyRequest, reply: FastifyReply) => {
    cors(reply);
    if (!presentsToken(request.headers.authorization, options.token)) {
      throw problems.codecUnauthorized(corsHeaders(options.corsOrigin));
    }
  };

  // A browser sends no credential on a preflight; it only asks what is allowed.
  for (const path of ['/codec/encode', '/codec/decode']) {
    app.options(path, { schema: { hide: true } }, async (_request, reply) => cors(reply).code(204).send());
  }

  // Opened once in the browser, it makes the browser remember the Basic credential it then sends with the UI's calls.
  app.get('/codec', { schema: { hide: true } }, async (request, reply) => {
    authorize(request, reply);
    return { status: 'ok' };
  });

  for (const direction of ['encode', 'decode'] as const) {
    app.post(
      `/codec/${direction}`,
      { schema: { hide: true, body: payloadList } },
      async (request, reply) => {
        authorize(request, reply);
        const payloads = request.body.payloads.map(fromJson);
        try {
          const result = direction === 'encode' ? await options.codec.encode(payloads) : await options.codec.decode(payloads);
          return { payloads: result.map(toJson) };
        } catch (error) {
          if (!(error instanceof PayloadDecryptionError)) throw error;
          throw problems.payloadUndecodable(error.message, corsHeaders(options.corsOrigin));
        }
      },
    );
  }
};

function corsHeaders(origin: string): Record<string, string> {
  return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' };
}

function presentsToken(header: string | undefined, token: string): boolean {
  if (typeof header === 'string' && header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    return bearerMatches(`Bearer ${decoded.slice(decoded.indexOf(':') + 1)}`, token);
  }
  return bearerMatches(header, token);
}

function fromJson(payload: z.infer<typeof jsonPayload>) {
  return {
    metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([name, value]) => [name, new Uint8Array(Buffer.from(value, 'base64'))])),
    data: new Uint8Array(Buffer.from(payload.data ?? '', 'base64')),
  };
}

function toJson(payload: { metadata?: Record<string, Uint8Array> | null; data?: Uint8Array | null }) {
  return {
    metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([name, value]) => [name, Buffer.from(value).toString('base64')])),
    data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
  };
}
