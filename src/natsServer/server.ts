// Starts a real nats-server child process with JetStream, for tests, benchmarks and `roost dev`.
//
// - Ports are picked by binding port 0 (client and http monitor), unless a client port is given.
// - The config file, the server log and (by default) the JetStream store live in one directory:
//   a fresh temp dir (removed by stop()) or opts.dir (kept, so `roost dev` keeps its data).
// - Readiness is the monitor's /healthz answering 200 (JetStream up), polled; no fixed sleeps.
// - stop() sends SIGTERM, waits for exit, SIGKILLs after 5 s, then removes the temp dir.
// - A process 'exit' hook SIGKILLs any server still running, so a crashed test leaves no orphan.
// - For `roost dev`: ownProcessGroup (a terminal's signals reach only its parent) and
//   dieWithParent (it dies even when its parent is killed with -9; see the option).

import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, closeSync, existsSync, constants as fsConstants, openSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";

export interface NatsServerOptions {
  /** Directory for the config, log and (default) store. Kept on stop(). Default: a temp dir. */
  dir?: string;
  /** Client port. Default: a free port. */
  port?: number;
  /** JetStream store directory. Default: `${dir}/jetstream`. */
  storeDir?: string;
  /** Path to the nats-server binary. Default: findNatsServer(). */
  binary?: string;
  /** How long to wait for the server to become healthy. Default 20 s. */
  startTimeoutMs?: number;
  /** Server name (unique in a cluster). Default roost_<port>. */
  serverName?: string;
  /** Monitoring port. Default: a free port. */
  httpPort?: number;
  /**
   * More config appended as it is (roost dev --secure: the authorization block of natsServer/auth.ts).
   * The config file is then readable by its owner only: it holds passwords.
   */
  extraConf?: string;
  /** Join a cluster: its name, this server's route port, and every member's route URL. */
  cluster?: { name: string; port: number; routes: string[] };
  /**
   * Run in a process group of its own, so a terminal's Ctrl-C or hangup reaches only this
   * process (which then stops the server in order). Default false.
   */
  ownProcessGroup?: boolean;
  /**
   * Die with this process, even when it is killed with -9: `setpriv --pdeathsig SIGTERM` when
   * /usr/bin/setpriv exists (util-linux), else a watchdog (`sh`) that sends SIGTERM when its
   * stdin, a pipe from this process, reaches EOF. Only for servers started from the main thread
   * (the death signal follows the thread that started the server). Default false.
   */
  dieWithParent?: boolean;
  /**
   * How often the server pings a client (and route) that sent nothing, and how many pings may go
   * unanswered before it drops the connection as stale. Defaults are nats-server's (2 min, 2): a
   * stopped or cut-off client keeps its connection, and messages sent to it wait in its socket,
   * for minutes. Fault tests shorten them to have such a client dropped in about a second.
   */
  pingIntervalMs?: number;
  pingMax?: number;
}

export interface NatsServerHandle {
  /** nats://127.0.0.1:<port> */
  url: string;
  port: number;
  /** http://127.0.0.1:<port> of the monitoring endpoint (/healthz, /jsz, /varz). */
  monitorUrl: string;
  pid: number;
  dir: string;
  /** The server's log file. */
  logFile: string;
  /** SIGTERM, wait for exit (SIGKILL after 5 s), remove the dir if it was a temp dir. */
  stop(): Promise<void>;
  /** Resolves when the server process exits, for whatever reason (stop() included). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const SETPRIV = "/usr/bin/setpriv";

const SEARCH_DIRS = ["/usr/sbin", "/usr/local/bin", "/usr/bin"];

/** The nats-server binary ($NATS_SERVER_BIN, then PATH, /usr/sbin, /usr/local/bin); null if none. */
export function findNatsServer(): string | null {
  const fromEnv = process.env.NATS_SERVER_BIN;
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...SEARCH_DIRS];
  const candidates = fromEnv ? [fromEnv, ...dirs.map((d) => join(d, "nats-server"))] : dirs.map((d) => join(d, "nats-server"));
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return null;
}

/** A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("could not read the bound port"));
        return;
      }
      const port = addr.port;
      srv.close((err) => (err ? reject(err) : resolvePort(port)));
    });
  });
}

// Servers still running, killed hard if this process exits without stopping them.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

function confString(s: string): string {
  // nats-server config accepts JSON-style double-quoted strings.
  return JSON.stringify(s);
}

function tailOf(file: string, max = 2000): string {
  try {
    const s = readFileSync(file, "utf8");
    return s.length > max ? s.slice(s.length - max) : s;
  } catch {
    return "";
  }
}

class StartFailure extends Error {
  constructor(
    message: string,
    readonly portInUse: boolean,
  ) {
    super(message);
  }
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = opts.binary ?? findNatsServer();
  if (!binary) throw new Error("nats-server not found on PATH, /usr/sbin or /usr/local/bin");
  const ownDir = opts.dir === undefined;
  const dir = ownDir ? await mkdtemp(join(tmpdir(), "roost-nats-")) : resolve(opts.dir!);
  try {
    await mkdir(dir, { recursive: true });
    // A port picked by freePort() can be taken by someone else before the server binds it:
    // retry with fresh ports when that happens (only when we picked them).
    for (let attempt = 1; ; attempt++) {
      try {
        return await startOnce(binary, dir, ownDir, opts);
      } catch (err) {
        if (err instanceof StartFailure && err.portInUse && attempt < 5) continue;
        throw err;
      }
    }
  } catch (err) {
    if (ownDir) await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

async function startOnce(binary: string, dir: string, ownDir: boolean, opts: NatsServerOptions): Promise<NatsServerHandle> {
  const port = opts.port ?? (await freePort());
  let httpPort = opts.httpPort ?? (await freePort());
  while (httpPort === port) httpPort = await freePort();
  const storeDir = resolve(opts.storeDir ?? join(dir, "jetstream"));
  await mkdir(storeDir, { recursive: true });
  const confFile = join(dir, "nats-server.conf");
  const logFile = join(dir, "nats-server.log");
  const conf = [
    `server_name: ${confString(opts.serverName ?? `roost_${port}`)}`,
    `listen: ${confString(`127.0.0.1:${port}`)}`,
    `http: ${confString(`127.0.0.1:${httpPort}`)}`,
    ...(opts.pingIntervalMs !== undefined ? [`ping_interval: ${confString(`${opts.pingIntervalMs}ms`)}`] : []),
    ...(opts.pingMax !== undefined ? [`ping_max: ${opts.pingMax}`] : []),
    `jetstream {`,
    `  store_dir: ${confString(storeDir)}`,
    `  max_memory_store: 1GB`,
    `  max_file_store: 64GB`,
    `}`,
    ...(opts.cluster
      ? [
          `cluster {`,
          `  name: ${confString(opts.cluster.name)}`,
          `  listen: ${confString(`127.0.0.1:${opts.cluster.port}`)}`,
          `  routes: [${opts.cluster.routes.map(confString).join(", ")}]`,
          `}`,
        ]
      : []),
    ...(opts.extraConf ? [opts.extraConf] : []),
    "",
  ].join("\n");
  await writeFile(confFile, conf, { mode: 0o600 });

  // stdout/stderr go to a file: an unread pipe would fill up and stall the server.
  const logFd = openSync(logFile, "a");
  let child: ChildProcess;
  const pdeathsig = opts.dieWithParent === true && existsSync(SETPRIV);
  try {
    // setpriv sets the death signal, then execs the server: same pid.
    const [file, args] = pdeathsig ? [SETPRIV, ["--pdeathsig", "SIGTERM", "--", binary, "-c", confFile]] : [binary, ["-c", confFile]];
    child = spawn(file, args, { stdio: ["ignore", logFd, logFd], detached: opts.ownProcessGroup === true });
  } finally {
    closeSync(logFd);
  }
  installExitHook();
  live.add(child);
  // Without setpriv: a watchdog whose stdin is a pipe from us; the kernel closes it when we die.
  let watchdog: ChildProcess | null = null;
  if (opts.dieWithParent === true && !pdeathsig && child.pid !== undefined) {
    watchdog = spawn("/bin/sh", ["-c", `read _ignored; kill -TERM ${child.pid} 2>/dev/null`], {
      stdio: ["pipe", "ignore", "ignore"],
      detached: true,
    });
    watchdog.on("error", () => {});
    watchdog.stdin!.on("error", () => {});
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  }

  let exited = false;
  let exitInfo = "";
  let exitStatus: { code: number | null; signal: NodeJS.Signals | null } = { code: null, signal: null };
  const exitPromise = new Promise<void>((res) => {
    child.once("exit", (code, signal) => {
      exited = true;
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      exitStatus = { code, signal };
      live.delete(child);
      // The server is gone: the watchdog must not signal its pid (it could be reused).
      if (watchdog && watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill("SIGKILL");
      res();
    });
  });
  const spawnError = new Promise<Error>((res) => child.once("error", (e) => res(e)));
  let spawnErr: Error | null = null;
  void spawnError.then((e) => {
    spawnErr = e;
  });

  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const killer = new Promise<void>((res) => {
        timer = setTimeout(() => {
          if (!exited) child.kill("SIGKILL");
          res();
        }, 5000);
      });
      await Promise.race([exitPromise, killer]);
      await exitPromise;
      clearTimeout(timer);
    }
    if (ownDir) await rm(dir, { recursive: true, force: true });
  };

  const monitorUrl = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
  let wait = 10;
  for (;;) {
    if (spawnErr) {
      live.delete(child);
      throw new StartFailure(`could not start ${binary}: ${(spawnErr as Error).message}`, false);
    }
    if (exited) {
      const log = tailOf(logFile);
      throw new StartFailure(`nats-server exited (${exitInfo}) before becoming ready:\n${log}`, /address already in use/i.test(log));
    }
    if (await healthy(monitorUrl)) break;
    if (Date.now() > deadline) {
      await stop().catch(() => {});
      throw new StartFailure(`nats-server did not become healthy within ${opts.startTimeoutMs ?? 20_000} ms:\n${tailOf(logFile)}`, false);
    }
    // Wait for either the process to exit or the next poll.
    await Promise.race([exitPromise, new Promise((r) => setTimeout(r, wait))]);
    wait = Math.min(wait * 2, 100);
  }

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    monitorUrl,
    pid: child.pid!,
    dir,
    logFile,
    stop,
    exited: exitPromise.then(() => exitStatus),
  };
}

/**
 * Ready: /healthz says ok, or says only that a consumer is not current. nats-server 2.9.10 checks
 * every stream before any consumer and names the first that is behind, so an error naming a
 * consumer means every stream is current. What taught it: a restarted member of a cluster never
 * became "healthy" because the leader's idle durable intake consumer ('ROOST_INTAKE >
 * roost-leader') stayed "not current" on it, though its streams had caught up and it served.
 */
async function healthy(monitorUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${monitorUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
    const text = await res.text();
    return res.ok || /JetStream consumer '[^']*' is not current/.test(text);
  } catch {
    return false;
  }
}
