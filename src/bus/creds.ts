// Credentials for a secured cell: a NATS user and password (natsServer/auth.ts gives each identity
// its subject permissions), and the TLS files of a cell that requires them (ops/nats/secure).
//
// Every command takes `--creds FILE`; without it ROOST_CREDS names the file, and without that the
// cluster file `roost dev --secure` wrote (its "creds": the admin's). The file is JSON:
//   {"user": "www-data", "pass": "…", "tls"?: {"caFile"?, "certFile"?, "keyFile"?}}
// A password is a secret: a Creds prints (JSON, util.inspect, a pino log line) as "[redacted]".

import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import type { ConnectionOptions } from "@nats-io/transport-node";

export interface CredsTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export class Creds {
  readonly user: string;
  readonly #pass: string;
  readonly tls: CredsTls | undefined;
  /** The file they came from ("" when built in memory). */
  readonly file: string;

  constructor(user: string, pass: string, tls?: CredsTls, file = "") {
    this.user = user;
    this.#pass = pass;
    this.tls = tls;
    this.file = file;
  }

  /** The NATS connection options that authenticate as this identity. */
  connectOptions(): Pick<ConnectionOptions, "user" | "pass" | "tls"> {
    return { user: this.user, pass: this.#pass, ...(this.tls ? { tls: { ...this.tls } } : {}) };
  }

  toJSON(): unknown {
    return { user: this.user, pass: "[redacted]", file: this.file };
  }

  [inspect.custom](): string {
    return `Creds(${this.user}, pass: [redacted])`;
  }
}

class CredsError extends Error {
  override name = "CredsError";
}

/** Read and check a credentials file; an error names the file, the field and the rule. */
export function readCreds(file: string): Creds {
  let raw: string;
  try {
    raw = readFileSync(file, "utf8");
  } catch (err) {
    throw new CredsError(`--creds ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new CredsError(`--creds ${file}: not JSON; expected {"user": "...", "pass": "..."}`);
  }
  const o = (typeof v === "object" && v !== null && !Array.isArray(v) ? v : {}) as Record<string, unknown>;
  const str = (x: unknown, field: string, rule: string): string => {
    if (typeof x !== "string" || x.length === 0 || x.length > 4096) throw new CredsError(`--creds ${file}: ${field}: ${rule}`);
    return x;
  };
  const user = str(o.user, "user", "must be a non-empty string (the NATS user)");
  const pass = str(o.pass, "pass", "must be a non-empty string (the user's password)");
  let tls: CredsTls | undefined;
  if (o.tls !== undefined) {
    const t = (typeof o.tls === "object" && o.tls !== null ? o.tls : null) as Record<string, unknown> | null;
    if (!t) throw new CredsError(`--creds ${file}: tls: must be an object {caFile?, certFile?, keyFile?}`);
    tls = {};
    for (const k of ["caFile", "certFile", "keyFile"] as const) {
      if (t[k] !== undefined) tls[k] = str(t[k], `tls.${k}`, "must be a file path");
    }
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined))
      throw new CredsError(`--creds ${file}: tls: certFile and keyFile go together (a client certificate and its key)`);
  }
  return new Creds(user, pass, tls, file);
}

/** --creds, else ROOST_CREDS, else the cluster file's; undefined when none is named. */
export function resolveCreds(flag: string | undefined, fromClusterFile?: string): Creds | undefined {
  const file = flag ?? (process.env.ROOST_CREDS || undefined) ?? fromClusterFile;
  return file === undefined ? undefined : readCreds(file);
}
