/**
 * Structured logs for the KV server: one JSON object per line on stderr,
 * `{"ts":"…","level":"info","node":1,"msg":"…", …fields}`, filtered by a minimum level.
 */

import type { NodeLogger } from '../node/index.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

function fieldValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === 'bigint') return value.toString();
  return value;
}

export function jsonLineLogger(
  base: Record<string, unknown>,
  minLevel: LogLevel,
  write: (line: string) => void = (line) => process.stderr.write(line),
): NodeLogger {
  const min = LOG_LEVELS.indexOf(minLevel);
  const at = (level: LogLevel) => {
    if (LOG_LEVELS.indexOf(level) < min) return () => {};
    return (msg: string, fields?: Record<string, unknown>) => {
      let line: string;
      try {
        line = JSON.stringify({ ts: new Date().toISOString(), level, ...base, msg, ...fields }, fieldValue);
      } catch {
        // A field that cannot be serialised (a cycle) must not lose the event.
        line = JSON.stringify({ ts: new Date().toISOString(), level, ...base, msg, fields: '[unserialisable]' });
      }
      write(line + '\n');
    };
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
