// SIGSTOP as a barrier. kill(2) returns once the signal is queued, not once the process has
// stopped: the kernel wakes one thread to begin the group stop, and the others stop only as each
// next returns to user mode. On a loaded 2-core machine a Go nats-server, SIGSTOPped, answered a
// request sent after kill() returned (CI, eventlog.jetstream "probe() … gives up after its own
// timeout"). A test that needs the process stopped waits for every thread of it to say so.

import { readdirSync, readFileSync } from "node:fs";

/** The state letter of each thread of `pid` (from /proc/PID/task/TID/stat); [] once it is gone. */
function threadStates(pid: number): string[] {
  const out: string[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      out.push(stat.charAt(stat.lastIndexOf(")") + 2));
    } catch {
      // the thread exited
    }
  }
  return out;
}

/** Sends SIGSTOP to `pid` and resolves once every one of its threads is stopped (state T). */
export async function stopProcess(pid: number, timeoutMs = 10_000): Promise<void> {
  process.kill(pid, "SIGSTOP");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = threadStates(pid);
    if (states.length === 0) throw new Error(`process ${pid} is gone: it cannot be stopped`);
    if (states.every((s) => s === "T")) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} not stopped after ${timeoutMs} ms: threads ${states.join("")}`);
    // No event says a process has stopped (only its parent's waitpid with WUNTRACED): poll /proc.
    await new Promise((r) => setTimeout(r, 2));
  }
}
