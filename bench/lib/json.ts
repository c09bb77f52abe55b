/** JSON output for bench rows: a JSON array with one object per row, one row per line. */

import fs from 'node:fs';
import path from 'node:path';

export function writeJsonRows(file: string, rows: readonly object[]): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const body = rows.map((row) => JSON.stringify(row, (_key, value: unknown) =>
    typeof value === 'number' && !Number.isFinite(value) ? null : value,
  ));
  fs.writeFileSync(file, `[\n${body.join(',\n')}\n]\n`);
}
