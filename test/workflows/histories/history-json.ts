import { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;

/**
 * Histories are committed as protobufjs plain objects (int64 and bytes as
 * strings, enums by name), a lossless round trip through fromObject. Not the
 * proto3 JSON of `temporal workflow show --output json`: the SDK's
 * historyFromJSON fails in this install ("type must be a Type"), because
 * @temporalio/common and @temporalio/proto each nest their own protobufjs 8
 * (the hoisted one is 7, for @google/genai and OpenTelemetry).
 */
export function historyToPlainObject(history: History): Record<string, unknown> {
  return temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.fromObject(history), {
    longs: String, enums: String, bytes: String,
  });
}

export function historyFromPlainObject(plain: Record<string, unknown>): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(plain);
}
