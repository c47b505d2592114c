/**
 * Generated text as PostgreSQL can store it: U+0000 and unpaired UTF-16
 * surrogates become U+FFFD (the replacement character); every other
 * character is kept. jsonb refuses both (and UTF-8 cannot encode a lone
 * surrogate), so an answer holding one could never be stored: the attempt
 * would fail after Gemini was paid and its retry would pay again, forever.
 * Replacing them at the edge means the stored, returned and replayed text are
 * one and the same string.
 */
export function storableText(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching U+0000 is the point
  return text.replace(/\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}
