// pino loggers. Daemons log JSON lines; the CLI and tests log to stderr (stdout stays free for
// command output). ROOST_LOG_LEVEL sets the level (default "info"; tests default to "warn").

import { pino, type Logger } from "pino";

export type { Logger };

export function makeLogger(svc: string, opts: { level?: string; dest?: 1 | 2 } = {}): Logger {
  const level = opts.level ?? process.env.ROOST_LOG_LEVEL ?? (process.env.VITEST ? "warn" : "info");
  return pino(
    { level, base: { svc, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: opts.dest ?? 2, sync: true }),
  );
}

export const silentLogger: Logger = pino({ level: "silent" });
