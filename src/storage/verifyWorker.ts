// A snapshot's state hash checked in a worker thread, while the main thread decodes the same bytes
// without the check (readSnapshot(bytes, { verify: false })) and folds the log's tail: a cold start
// then costs about the decode plus the check, not the decode, the check and the tail in a row.
//
// Why the worker's verdict covers the main thread's state: the worker runs the same deterministic
// decode (readSnapshot, this build's code) on the same bytes (one SharedArrayBuffer, read by both,
// written by neither), then recomputes stateHash and compares it with the header. Decoding is a
// function of the bytes alone (no clock, no randomness, no shared mutable state), so when the
// worker's decode hashes to the header's hash, the main thread's decode of those bytes is that
// state too. The main thread must not trust its state (nor anything folded onto it) before the
// verdict; src/storage/coldStart.ts awaits it and folds from an older snapshot or genesis otherwise.
//
// This file is both the worker's entry (when started with VERIFIER in workerData) and the main
// thread's side (startVerifier). The built CLI starts the worker on this compiled .js; tests run
// src/*.ts directly, and then the worker loads this .ts file through tsx (a devDependency).

import { parentPort, Worker, workerData } from "node:worker_threads";
import { SnapshotError, verifySnapshot } from "../replay/snapshot.js";
import { workerTarget } from "./workerTarget.js";

const VERIFIER = "roost-snapshot-verifier";

/** main → worker */
interface CheckRequest {
  bytes: Uint8Array;
}

/** worker → main */
type CheckReply = { ok: true; ms: number } | { ok: false; ms: number; error: string; snapshotError: boolean };

/** The verdict on a snapshot whose hash matched. */
export interface Verdict {
  /** Where the check ran: "worker", or "inline" (on this thread, also when the worker failed);
   *  "writer": the build that stored the bytes checked them, and only their digest was checked
   *  here (SNAPSHOT_CODEC, src/replay/snapshot.ts). */
  by: "worker" | "inline" | "writer";
  /** How long the check took (decode + hash; for "writer", the body digest), ms, on the thread that ran it. */
  ms: number;
  /** Why the worker could not give the verdict, when it fell back to this thread. */
  workerFailure?: string;
}

export interface Verifier {
  /**
   * Check these bytes (fully: decode and hash). Resolves with the verdict when they decode to the
   * hash in their header; rejects with a SnapshotError (its message as the worker gave it) when not.
   * `bytes` should live in a SharedArrayBuffer (the worker then reads them where they are; other
   * bytes are copied once, see toShared). Call once.
   */
  check(bytes: Uint8Array): Promise<Verdict>;
  /** Stop the worker (an abandoned check rejects). */
  cancel(): void;
}

/** The bytes in a SharedArrayBuffer: themselves when they already are, else one copy. */
export function toShared(bytes: Uint8Array): Uint8Array {
  if (bytes.buffer instanceof SharedArrayBuffer) return bytes;
  const out = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  out.set(bytes);
  return out;
}

/**
 * Start a verifier thread now (loading its modules takes a while: start it before fetching the
 * bytes), to check one snapshot. If the worker cannot give a verdict (it fails to start, dies, runs
 * out of memory), the check runs on this thread instead: a broken worker never rejects a good
 * snapshot, nor passes a bad one.
 */
export function startVerifier(): Verifier {
  return new VerifierThread();
}

const CANCELLED = "the snapshot check was cancelled";

class VerifierThread implements Verifier {
  private worker: Worker | null = null;
  /** Why the worker cannot be used (failed to start, died before check()). */
  private broken: string | null = null;
  private used = false;
  private cancelled = false;
  /** Ends a running check (set by check()). */
  private abort: (() => void) | null = null;

  constructor() {
    try {
      const { target, eval: isEval } = workerTarget(import.meta.url);
      this.worker = new Worker(target, { eval: isEval, workerData: { [VERIFIER]: true } });
    } catch (err) {
      this.broken = `the verifier thread did not start: ${(err as Error).message}`;
      return;
    }
    // Until check() takes over: a worker failing early must not crash the process.
    this.worker.on("error", (err: Error) => (this.broken ??= `the verifier thread failed: ${err.message}`));
    this.worker.on("exit", (code: number) => (this.broken ??= `the verifier thread exited (code ${code}) before it was given the bytes`));
  }

  check(bytes: Uint8Array): Promise<Verdict> {
    if (this.used) return Promise.reject(new Error("a verifier checks one snapshot"));
    this.used = true;
    if (this.cancelled) return Promise.reject(new Error(CANCELLED));
    const w = this.worker;
    if (w === null || this.broken !== null) {
      this.stop();
      const why = this.broken ?? "no verifier thread";
      return new Promise((resolve) => resolve(inlineCheck(bytes, why)));
    }
    w.removeAllListeners();
    return new Promise<Verdict>((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        this.abort = null;
        this.stop();
        f();
      };
      const fallback = (why: string) =>
        settle(() => {
          try {
            resolve(inlineCheck(bytes, why));
          } catch (err) {
            reject(err);
          }
        });
      w.on("message", (r: CheckReply) =>
        settle(() =>
          r.ok ? resolve({ by: "worker", ms: r.ms }) : reject(r.snapshotError ? new SnapshotError(r.error) : new Error(r.error)),
        ),
      );
      w.on("error", (err: Error) => fallback(`the verifier thread failed: ${err.message}`));
      // (A reply still queued is handled first: the exit is looked at a turn later.)
      w.on("exit", (code: number) => setImmediate(() => fallback(`the verifier thread exited (code ${code}) without a verdict`)));
      this.abort = () => settle(() => reject(new Error(CANCELLED)));
      // A SharedArrayBuffer is shared, not copied (other bytes are copied here, once).
      w.postMessage({ bytes: toShared(bytes) } satisfies CheckRequest);
    });
  }

  cancel(): void {
    this.cancelled = true;
    if (this.abort) this.abort();
    else this.stop();
  }

  private stop(): void {
    const w = this.worker;
    if (w === null) return;
    this.worker = null;
    w.removeAllListeners();
    w.on("error", () => {});
    w.terminate().catch(() => {});
  }
}

/** The check on this thread: the same verdict the worker gives (throws SnapshotError). */
function inlineCheck(bytes: Uint8Array, workerFailure: string): Verdict {
  const t0 = performance.now();
  verifySnapshot(bytes);
  return { by: "inline", ms: performance.now() - t0, workerFailure };
}

// ---- the worker ---------------------------------------------------------------------------------

if (parentPort !== null && (workerData as Record<string, unknown> | null)?.[VERIFIER] === true) {
  const port = parentPort;
  port.once("message", ({ bytes }: CheckRequest) => {
    const t0 = performance.now();
    let reply: CheckReply;
    try {
      verifySnapshot(bytes);
      reply = { ok: true, ms: performance.now() - t0 };
    } catch (err) {
      reply = { ok: false, ms: performance.now() - t0, error: (err as Error).message, snapshotError: err instanceof SnapshotError };
    }
    port.postMessage(reply); // then nothing is left to do: the thread ends (or is terminated)
  });
}
