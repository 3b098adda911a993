// Every nats-server config shipped under ops/ is one that nats-server accepts (`nats-server -t`),
// so an operator never finds a typo, a 2.10-only key or a broken include on the day they deploy.
// The secure cell's configs need certificates and their users' passwords: the test makes both
// (gen-certs.sh into a temp dir, a random value for each variable a config reads) in a copy of
// ops/, and also proves that a forgotten ROOST_PASS_* variable stops the server instead of leaving
// a user without a password. ops/nats/auth.conf must be exactly what tools/ops-config.ts writes.
// Nothing is skipped: without openssl or nats-server the test fails and says which is missing.

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findNatsServer } from "../src/natsServer/server.js";
import { authConfText } from "../tools/ops-config.js";

const root = join(import.meta.dirname, "..");
const ops = join(root, "ops");
/** Every *.conf under ops/, relative to it: a config added later is checked without editing this file. */
const confs = readdirSync(ops, { recursive: true, encoding: "utf8" })
  .filter((f) => f.endsWith(".conf"))
  .sort();

let tmp: string;
/** The copy of ops/ the configs are checked in, its /etc/roost/tls/ paths pointing at test certificates. */
let copy: string;
let natsServer: string;

/**
 * The variables a config reads (`$NAME` as a value, the only place nats-server expands one), in it
 * and in the files it includes. Comments and quoted strings ("$JS.API.>" is a subject) are not read.
 */
function variablesOf(file: string, seen = new Set<string>()): Set<string> {
  const vars = new Set<string>();
  if (seen.has(file)) return vars;
  seen.add(file);
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const line = raw.replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, '""').replace(/#.*$|^\s*\/\/.*$/, "");
    const inc = /^\s*include\s+(\S+)/.exec(raw);
    if (inc) {
      const target = inc[1]!.replace(/^["']|["';]+$/g, "");
      for (const v of variablesOf(resolve(dirname(file), target), seen)) vars.add(v);
      continue;
    }
    for (const m of line.matchAll(/(?<=^|[\s:=[,{])\$([A-Za-z_][A-Za-z0-9_]*)/g)) vars.add(m[1]!);
  }
  return vars;
}

/** `nats-server -t -c file` with only PATH and `vars` in its environment, from a directory of its own. */
function check(file: string, vars: Iterable<string>): { code: number | null; out: string } {
  // A password that starts with a letter: nats-server parses a variable's value as a config value,
  // and "123456" would be a number.
  const env: Record<string, string> = { PATH: process.env.PATH ?? "" };
  for (const v of vars) env[v] = `p${randomBytes(16).toString("hex")}`;
  const r = spawnSync(natsServer, ["-t", "-c", file], { cwd: tmp, env, encoding: "utf8" });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

beforeAll(() => {
  const nats = findNatsServer();
  if (!nats) throw new Error("nats-server not found (PATH, /usr/sbin, NATS_SERVER_BIN): apt-get install nats-server");
  natsServer = nats;
  // gen-certs.sh runs openssl from PATH; a missing one fails here, saying so, rather than skipping.
  if (!(process.env.PATH ?? "").split(delimiter).some((d) => d !== "" && existsSync(join(d, "openssl"))))
    throw new Error(
      "openssl not found on PATH: the secure configs need certificates from ops/nats/secure/gen-certs.sh (apt-get install openssl)",
    );
  tmp = mkdtempSync(join(tmpdir(), "roost-ops-"));
  const tls = join(tmp, "tls");
  const gen = spawnSync("bash", [join(ops, "nats", "secure", "gen-certs.sh"), tls], { encoding: "utf8" });
  if (gen.status !== 0) throw new Error(`gen-certs.sh failed (${gen.status}): ${gen.stdout}${gen.stderr}`);
  copy = join(tmp, "ops");
  cpSync(ops, copy, { recursive: true });
  for (const f of confs) {
    const p = join(copy, f);
    writeFileSync(p, readFileSync(p, "utf8").replaceAll("/etc/roost/tls/", `${tls}/`));
  }
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("ops/nats/auth.conf", () => {
  it("is what tools/ops-config.ts writes from identities.json", () => {
    const identities = readFileSync(join(ops, "nats", "identities.json"), "utf8");
    expect(readFileSync(join(ops, "nats", "auth.conf"), "utf8"), "stale: run npm run ops-config").toBe(authConfText(identities));
  });

  it("passes tools/ops-config.ts --check", () => {
    const r = spawnSync(join(root, "node_modules", ".bin", "tsx"), ["tools/ops-config.ts", "--check"], { cwd: root, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
  });
});

describe("every config under ops/", () => {
  it("includes the secure cell's", () => {
    expect(confs).toEqual(
      expect.arrayContaining(["nats/auth.conf", "nats/secure/nats-1.conf", "nats/secure/nats-2.conf", "nats/secure/nats-3.conf"]),
    );
    // The copy uses only what gen-certs.sh wrote, never a real /etc/roost/tls.
    for (const f of confs) expect(readFileSync(join(copy, f), "utf8")).not.toContain("/etc/roost/tls/");
    expect(existsSync(join(tmp, "tls", "server.pem"))).toBe(true);
  });

  it.each(confs)("nats-server -t accepts %s", (f) => {
    const file = join(copy, f);
    const r = check(file, variablesOf(file));
    expect(r.code, r.out).toBe(0);
  });
});

describe("a secure config whose ROOST_PASS_* variable is unset", () => {
  const secured = confs.filter((f) => f === "nats/auth.conf" || f.startsWith("nats/secure/"));

  it.each(secured)("%s: nats-server -t fails, naming the variable", (f) => {
    const file = join(copy, f);
    const vars = [...variablesOf(file)];
    const passwords = vars.filter((v) => v.startsWith("ROOST_PASS_"));
    // Through auth.conf: every identity's password, the scheduler's among them.
    expect(passwords).toContain("ROOST_PASS_SCHEDULER");
    for (const missing of passwords) {
      const r = check(
        file,
        vars.filter((v) => v !== missing),
      );
      expect(r.code, `${missing} unset: ${r.out}`).not.toBe(0);
      expect(r.out).toContain(`variable reference for '${missing}'`);
    }
  });
});
