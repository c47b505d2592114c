/** The onceflow package: the client that retries safely. Servers and workers start from their own entry points (see README). */
export * from './client';
