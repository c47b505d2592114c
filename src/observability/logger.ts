import pino from 'pino';

export type Logger = pino.Logger;

/**
 * Paths pino replaces with "[redacted]" in every process: credentials, and
 * prompts and generated text, which belong to the tenant and never to our logs.
 */
export const redactedPaths = [
  'apiKey',
  'secret',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-goog-api-key"]',
  '*.apiKey',
  '*.secret',
  '*.prompt',
  '*.system',
  '*.text',
  'prompt',
  'system',
  'text',
  'input.prompt',
  'input.system',
  'input.input.prompt',
  'result.text',
];

export interface CreateLoggerOptions {
  /** `api`, `worker`, `relay`, `supervisor`, … */
  service: string;
  /** Default `info`. */
  level?: string;
  /** Default: stdout. */
  destination?: pino.DestinationStream;
}

export function createLogger(options: CreateLoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service, pid: process.pid },
      redact: { paths: redactedPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination,
  );
}
