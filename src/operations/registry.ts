/**
 * The operation registry: every operation type is declared here, once. Adding a
 * type means adding one entry (and its workflow in workflows/).
 */
import { z } from 'zod';
import type { NonEssentialField } from '../idempotency/fingerprint';

export interface OperationTypeDefinition<TSchema extends z.ZodType = z.ZodType, TResult extends z.ZodType = z.ZodType> {
  /** URL segment and `operationType` in every resource. */
  name: string;
  /** Validates the request body; the validated value is what runs and what is fingerprinted. */
  inputSchema: TSchema;
  /**
   * The `result` of a succeeded operation: documented in OpenAPI, checked when
   * a resource is serialised, and the client's result type. Objects are loose,
   * so a field added later never breaks the replay of an older result.
   */
  resultSchema: TResult;
  /**
   * Dotted paths dropped before fingerprinting: changing them never makes a
   * request "different". A later change to this list is a dated rule (see
   * NonEssentialField), so keys reserved before it keep replaying.
   */
  nonEssentialFields: readonly NonEssentialField[];
  /**
   * Dotted paths of the business fields that make two requests the same
   * operation. When set, a request without Idempotency-Key gets a key derived
   * from them (src/idempotency/derived-key.ts), returned in the
   * Idempotency-Key response header. Default: none (the header is required).
   */
  keyFields?: readonly string[];
  /** How long a key stays bound to its operation. Default ONCEFLOW_DEFAULT_RETENTION_HOURS (24). */
  retentionHours?: number;
  /** A failure after exhausted retries releases the key: the next request starts a new run. */
  releaseKeyOnExhaustedFailure: boolean;
  /** Name of the exported workflow function in workflows/index.ts. */
  workflowType: string;
  /** One line for the Temporal UI's static summary. Never includes prompt text. */
  summary(input: z.infer<TSchema>): string;
}

const model = z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, 'a Gemini model name such as gemini-2.5-flash');
const prompt = z.string().min(1).max(100_000);
const metadata = z.record(z.string(), z.unknown()).optional();

export const generateContentInput = z
  .object({
    prompt,
    model: model.optional(),
    system: z.string().max(20_000).optional(),
    temperature: z.number().min(0).max(2).optional(),
    maxOutputTokens: z.number().int().min(1).max(65_536).optional(),
    metadata,
  })
  .strict();
export type GenerateContentInput = z.infer<typeof generateContentInput>;

export const generateReportInput = z
  .object({
    prompt,
    model: model.optional(),
    system: z.string().max(20_000).optional(),
    metadata,
  })
  .strict();
export type GenerateReportInput = z.infer<typeof generateReportInput>;

/**
 * A content pipeline's draft: the same title (in the same publication) must
 * never be drafted twice, even by a caller that has no request id to reuse.
 */
export const draftContentInput = z
  .object({
    title: z.string().min(1).max(500).describe('the business identity of the draft, with `publication`'),
    publication: z.string().min(1).max(200).optional(),
    prompt,
    model: model.optional(),
    system: z.string().max(20_000).optional(),
    metadata,
  })
  .strict();
export type DraftContentInput = z.infer<typeof draftContentInput>;

const usage = z.looseObject({ promptTokens: z.number(), outputTokens: z.number(), totalTokens: z.number() });
/** One Gemini call of the operation, as recorded in gemini_attempts. */
const geminiAttempt = z.looseObject({
  model: z.string(),
  outcome: z.string().describe('succeeded, rate_limited, unavailable, rejected, safety_blocked, model_not_found, …'),
  durationMs: z.number(),
  promptTokens: z.number().optional(),
  outputTokens: z.number().optional(),
  error: z.string().optional(),
});

export const generateContentResult = z.looseObject({
  text: z.string(),
  model: z.string().describe('the model that answered (a fallback when the primary failed)'),
  usage,
  attempts: z.array(geminiAttempt).describe('every Gemini call made for this operation, oldest first'),
});
export type GenerateContentResult = z.infer<typeof generateContentResult>;

export const generateReportResult = generateContentResult.extend({
  interactionId: z.string(),
  completedBy: z.enum(['webhook', 'poll']).describe('which of the two completion paths saw the end first'),
});
export type GenerateReportResult = z.infer<typeof generateReportResult>;

function define<TSchema extends z.ZodType, TResult extends z.ZodType>(definition: OperationTypeDefinition<TSchema, TResult>): OperationTypeDefinition<TSchema, TResult> {
  return definition;
}

export const operationTypes = {
  'generate-content': define({
    name: 'generate-content',
    inputSchema: generateContentInput,
    resultSchema: generateContentResult,
    nonEssentialFields: ['metadata'],
    releaseKeyOnExhaustedFailure: true,
    workflowType: 'generateContentWorkflow',
    summary: (input) => `generate-content with ${input.model ?? 'the default model chain'}`,
  }),
  'generate-report': define({
    name: 'generate-report',
    inputSchema: generateReportInput,
    resultSchema: generateReportResult,
    nonEssentialFields: ['metadata'],
    releaseKeyOnExhaustedFailure: true,
    workflowType: 'generateReportWorkflow',
    summary: (input) => `generate-report (background interaction) with ${input.model ?? 'the default model'}`,
  }),
  'draft-content': define({
    name: 'draft-content',
    inputSchema: draftContentInput,
    resultSchema: generateContentResult,
    nonEssentialFields: ['metadata'],
    keyFields: ['publication', 'title'],
    releaseKeyOnExhaustedFailure: true,
    // One Gemini generation, like generate-content: the workflow reads prompt, model and system.
    workflowType: 'generateContentWorkflow',
    summary: (input) => `draft-content with ${input.model ?? 'the default model chain'}`,
  }),
} as const;

export type OperationTypeName = keyof typeof operationTypes;
export const operationTypeNames = Object.keys(operationTypes) as OperationTypeName[];

/**
 * The type's request schema with `model` restricted to the operator's
 * allowlist (GEMINI_ALLOWED_MODELS), so a model outside it is a schema error:
 * 400 invalid-request whose issue lists the allowed models, answered before
 * anything is reserved. The OpenAPI document shows the list as an enum.
 */
export function inputSchemaAllowing(definition: OperationTypeDefinition, allowedModels: readonly string[]): z.ZodType {
  const schema = definition.inputSchema;
  if (!(schema instanceof z.ZodObject) || !('model' in schema.shape) || allowedModels.length === 0) return schema;
  const allowed = z.enum(allowedModels as [string, ...string[]], { error: () => `model must be one of the allowed models: ${allowedModels.join(', ')}` });
  return schema.extend({ model: allowed.optional() });
}

export function findOperationType(name: string): OperationTypeDefinition | undefined {
  return Object.hasOwn(operationTypes, name) ? operationTypes[name as OperationTypeName] : undefined;
}

/**
 * What is wrong with a succeeded result against its type's resultSchema, as
 * one line per issue; empty when it conforms. Checked once, when the result is
 * written (completeOperation), so replays can send the stored result as it is.
 */
export function resultIssues(operationType: string, result: unknown): string[] {
  const definition = findOperationType(operationType);
  if (!definition) return [`operation type ${operationType} is not registered`];
  const parsed = definition.resultSchema.safeParse(result);
  return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.') || '(result)'}: ${issue.message}`);
}
