// The two health checks Aurora's executor runs (common/health_check/http_signaler.py and shell.py).
//
// - httpProbe GETs http://127.0.0.1:<port><endpoint> through ONE keep-alive http.Agent shared by
//   every check of this process: at most one socket per port, kept open between checks, so a
//   check every second costs a request on an open connection, not a TCP handshake. Node drops a
//   free socket just before the server's announced Keep-Alive timeout; a check that still meets a
//   socket the server closed (ECONNRESET on a reused socket) is retried once on a new one.
//   The body (at most MAX_BODY bytes read) is trimmed and compared case-insensitively with
//   expectedResponse (an empty expectedResponse accepts any body), then the status code, only when
//   expectedResponseCode is not 0. The whole check, connect to last byte, has timeoutMs.
// - shellProbe runs `/bin/sh -c command` in the sandbox, in its own process group; it passes on
//   exit 0. A timeout SIGKILLs the group; so does the command's exit (nothing it started in the
//   background outlives the check).
//
// Probes never reject: every failure is {ok: false, reason}, the reason worded for the task's
// history.

import { spawn } from "node:child_process";
import * as http from "node:http";

export interface ProbeResult {
  ok: boolean;
  reason: string | null;
}

export interface HttpCheckSpec {
  endpoint: string;
  expectedResponse: string;
  /** Checked only when not 0. */
  expectedResponseCode: number;
}

/** At most this much of a response body is read. */
const MAX_BODY = 4096;
/** The body quoted in a failure reason is cut to this many characters. */
const MAX_QUOTED_BODY = 100;
/** The stderr line quoted when a shell check fails is cut to this many characters. */
const MAX_QUOTED_STDERR = 200;
/** Kept while a shell check runs: enough to find its last line. */
const STDERR_TAIL = 4096;
/**
 * A free keep-alive socket is closed after this long unused (or 1 s before the server's
 * announced Keep-Alive timeout, whichever is shorter). Checks every intervalSecs reuse it.
 */
const FREE_SOCKET_MS = 30_000;

const PASSED: ProbeResult = Object.freeze({ ok: true, reason: null }) as ProbeResult;

/** The keep-alive agent of every HTTP check in this process. */
const agent = new http.Agent({
  keepAlive: true,
  maxSockets: 1,
  maxFreeSockets: 1,
  timeout: FREE_SOCKET_MS,
  scheduling: "lifo",
});

/** Closes every connection kept open for HTTP checks (they reopen on demand). */
export function closeProbeConnections(): void {
  agent.destroy();
}

/** 1 s, 0.5 s, 2.25 s. */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

function quote(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** One HTTP check: its state, and the handlers every request of it shares. */
class HttpCheck {
  private done = false;
  private retried = false;
  private req: http.ClientRequest | null = null;
  private readonly timer: NodeJS.Timeout;
  private chunks: Buffer[] = [];
  private size = 0;
  private status = 0;

  constructor(
    private readonly port: number,
    private readonly spec: HttpCheckSpec,
    private readonly timeoutMs: number,
    private readonly resolve: (r: ProbeResult) => void,
  ) {
    this.timer = setTimeout(this.onTimeout, timeoutMs);
    this.timer.unref();
    this.send();
  }

  private send(): void {
    const req = http.request({ agent, host: "127.0.0.1", port: this.port, path: this.spec.endpoint, method: "GET" }, this.onResponse);
    this.req = req;
    req.on("error", this.onError);
    req.end();
  }

  private finish(r: ProbeResult): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.resolve(r);
  }

  private readonly onTimeout = (): void => {
    this.finish({ ok: false, reason: `timed out after ${seconds(this.timeoutMs)}` });
    this.req?.destroy();
  };

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    if (this.done) return;
    const req = this.req;
    if (err.code === "ECONNRESET" && req?.reusedSocket && !this.retried && this.size === 0 && this.status === 0) {
      // The server closed the kept-alive connection as we reused it: once more on a new one.
      this.retried = true;
      this.send();
      return;
    }
    if (err.code === "ECONNREFUSED") return this.finish({ ok: false, reason: `connection refused on port ${this.port}` });
    this.finish({ ok: false, reason: err.message || String(err.code ?? err) });
  };

  private readonly onResponse = (res: http.IncomingMessage): void => {
    this.status = res.statusCode ?? 0;
    res.on("data", this.onData);
    res.on("end", this.onEnd);
    res.on("error", this.onError);
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return;
    if (this.size < MAX_BODY) {
      this.chunks.push(this.size + chunk.length > MAX_BODY ? chunk.subarray(0, MAX_BODY - this.size) : chunk);
      this.size += chunk.length;
    }
    if (this.size >= MAX_BODY && !this.done) {
      // Enough read: judge it and drop the connection rather than read the rest.
      this.judge();
      this.req?.destroy();
    }
  };

  private readonly onEnd = (): void => {
    this.judge();
  };

  private judge(): void {
    if (this.done) return;
    const { expectedResponse, expectedResponseCode } = this.spec;
    const raw = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const body = raw.toString("utf8").trim();
    const expected = expectedResponse.trim();
    if (expected !== "" && body.toLowerCase() !== expected.toLowerCase()) {
      return this.finish({ ok: false, reason: `expected "${expectedResponse}", got "${quote(body, MAX_QUOTED_BODY)}"` });
    }
    if (expectedResponseCode !== 0 && this.status !== expectedResponseCode) {
      return this.finish({ ok: false, reason: `expected HTTP ${expectedResponseCode}, got ${this.status}` });
    }
    this.finish(PASSED);
  }
}

/** GET http://127.0.0.1:<port><endpoint>, judged as Aurora's HttpHealthChecker does. */
export function httpProbe(port: number, cfg: HttpCheckSpec, timeoutMs: number): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    new HttpCheck(port, cfg, timeoutMs, resolve);
  });
}

/** The last non-blank line of a stderr tail, cut to MAX_QUOTED_STDERR characters. */
function lastLine(tail: string): string {
  const lines = tail.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (line !== "") return quote(line, MAX_QUOTED_STDERR);
  }
  return "";
}

/** A failed exit, with the last line of stderr when there is one. */
function withStderr(exit: ProbeResult, tail: string): ProbeResult {
  if (exit.ok) return exit;
  const line = lastLine(tail);
  return line ? { ok: false, reason: `${exit.reason}: ${line}` } : exit;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is gone
  }
}

/** `/bin/sh -c command` in cwd (its own process group): passes on exit 0. */
export function shellProbe(command: string, cwd: string, env: Record<string, string>, timeoutMs: number): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    let done = false;
    let exit: ProbeResult | null = null;
    let tail = "";
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const child = spawn("/bin/sh", ["-c", command], {
      cwd,
      env: { ...process.env, ...env },
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
    });
    const timer = setTimeout(() => {
      killGroup(child.pid);
      // Exited, but something it started still holds stderr: the exit decides.
      finish(exit ? withStderr(exit, tail) : { ok: false, reason: "Health check timed out." });
    }, timeoutMs);
    timer.unref();
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (s: string) => {
      tail += s;
      if (tail.length > STDERR_TAIL * 2) tail = tail.slice(-STDERR_TAIL);
    });
    child.on("error", (err) => finish({ ok: false, reason: `health check command failed to start: ${err.message}` }));
    child.on("exit", (code, signal) => {
      // Nothing it started in the background outlives the check.
      killGroup(child.pid);
      if (code === 0) exit = PASSED;
      else {
        const what = code !== null ? `exited with code ${code}` : `was killed by signal ${signal}`;
        exit = { ok: false, reason: `health check command ${what}` };
      }
    });
    child.on("close", () => {
      if (exit !== null) finish(withStderr(exit, tail)); // else an "error" decided
    });
  });
}
