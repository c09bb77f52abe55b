/** Where the WAL and the snapshotter report things an operator should see. */
export interface WalLogger {
  /** Something is degraded or was repaired (torn tail cut, directory sync unsupported, …). */
  warn(message: string): void;
  /** Routine events (segment cut, release). */
  info(message: string): void;
}

export const stderrLogger: WalLogger = {
  warn(message: string) {
    process.stderr.write(`raftkv: ${message}\n`);
  },
  info() {
    // Routine events stay quiet by default.
  },
};
