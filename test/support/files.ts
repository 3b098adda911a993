// Files a task process writes, polled for (a process in another tree gives no event to await).

import * as fs from "node:fs";

/** Polls (bounded) for a file ending with a newline; returns its content trimmed. */
export async function waitForFile(file: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const text = fs.readFileSync(file, "utf8");
      if (text.endsWith("\n")) return text.trim();
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${file}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A pid a task process wrote to `file`. */
export async function waitForPid(file: string): Promise<number> {
  const pid = Number(await waitForFile(file));
  if (!(Number.isInteger(pid) && pid > 0)) throw new Error(`${file} holds ${pid}, not a pid`);
  return pid;
}
