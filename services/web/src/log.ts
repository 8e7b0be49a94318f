// Connection events on the console (debug level): what happened and when,
// for anyone looking into a stuck transfer. Never file contents.
const t0 = performance.now();

export function debug(...args: unknown[]): void {
  console.debug(`[privydrop +${((performance.now() - t0) / 1000).toFixed(2)}s]`, ...args);
}
