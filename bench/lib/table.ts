/** Plain-text tables for benchmark output. */

export interface Column<Row> {
  header: string;
  value: (row: Row) => string | number | null;
  /** Digits after the decimal point for numbers (default 0). */
  digits?: number;
  align?: 'left' | 'right';
}

function cell(value: string | number | null, digits: number): string {
  if (value === null) return '-';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return '-';
    return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  return value;
}

export function formatTable<Row>(columns: readonly Column<Row>[], rows: readonly Row[]): string {
  const cells = rows.map((row) => columns.map((column) => cell(column.value(row), column.digits ?? 0)));
  const widths = columns.map((column, i) =>
    Math.max(column.header.length, ...cells.map((rowCells) => rowCells[i]!.length)),
  );
  const render = (values: string[]): string =>
    values
      .map((value, i) => {
        const align = columns[i]!.align ?? (i === 0 ? 'left' : 'right');
        return align === 'left' ? value.padEnd(widths[i]!) : value.padStart(widths[i]!);
      })
      .join('  ')
      .trimEnd();
  const lines = [render(columns.map((column) => column.header)), render(widths.map((w) => '-'.repeat(w)))];
  for (const rowCells of cells) lines.push(render(rowCells));
  return lines.join('\n');
}
