/** Tiny flag parser for bench scripts: `--flag` booleans and `--name VALUE` / `--name=VALUE`. */

/** A bad command line: print the message (and usage), not a stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface FlagSpec {
  booleans: readonly string[];
  strings: readonly string[];
}

export interface ParsedFlags {
  booleans: Set<string>;
  strings: Map<string, string>;
}

export function parseFlags(argv: readonly string[], spec: FlagSpec): ParsedFlags {
  const booleans = new Set<string>();
  const strings = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (spec.booleans.includes(name)) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      booleans.add(name);
    } else if (spec.strings.includes(name)) {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`);
      strings.set(name, value);
    } else {
      const known = [...spec.booleans, ...spec.strings].map((flag) => `--${flag}`).join(', ');
      throw new UsageError(`unknown flag --${name} (known: ${known})`);
    }
  }
  return { booleans, strings };
}
