// The control channel of `roost scheduler` and `roost agent` when `roost dev` runs them
// (--control-stdin): lines on stdin, answers on stdout (their logs go to stderr).
//
//   quiesce <why>   the scheduler stops placing, rescheduling and preempting; answers "quiesced"
//   stop <why>      an orderly stop; `why` is what the agent's KILLED updates say
//   kill <why>      a fast stop (tasks killed with no grace, little waiting)
//   end of input    the parent is gone (the kernel closes the pipe even after kill -9): stop
//
// Without the flag nothing is read from stdin (systemd gives /dev/null): signals stop them.

import { createInterface } from "node:readline";

export interface ControlHandlers {
  quiesce?: (why: string) => void;
  stop: (why: string, fast: boolean) => void;
  /** stdin reached its end: the parent went away. */
  eof: () => void;
  /** A line that is not a command. */
  unknown?: (line: string) => void;
}

/** Read control lines from stdin until its end. */
export function listenForControl(h: ControlHandlers): void {
  // The parent may be gone when an answer is written: a broken pipe is no error of ours.
  process.stdout.on("error", () => {});
  process.stdin.on("error", () => {});
  const lines = createInterface({ input: process.stdin, terminal: false });
  lines.on("line", (raw) => {
    const line = raw.trim();
    if (line === "") return;
    const sp = line.indexOf(" ");
    const cmd = sp < 0 ? line : line.slice(0, sp);
    const why = sp < 0 ? "" : line.slice(sp + 1).trim();
    if (cmd === "quiesce") h.quiesce?.(why);
    else if (cmd === "stop") h.stop(why, false);
    else if (cmd === "kill") h.stop(why, true);
    else h.unknown?.(line);
  });
  lines.on("close", () => h.eof());
}

/** An answer to the parent, one line on stdout. */
export function controlReply(line: string): void {
  try {
    process.stdout.write(`${line}\n`);
  } catch {
    // the parent is gone
  }
}

/** SIGTERM, SIGINT and SIGHUP all mean an orderly stop; `fast` is true from the second one on. */
export function onStopSignals(stop: (signal: NodeJS.Signals, fast: boolean) => void): void {
  let seen = 0;
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => stop(sig, ++seen > 1));
}
