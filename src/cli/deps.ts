// What main.ts lends the command modules (update, cron, host maintenance, sla): its option
// helpers, its client, and its leader-or-log read. One shape, built once in main.ts; each module
// takes the part it uses. Four modules had grown four copies of it.

import type { Command } from "commander";
import type { RoostClient } from "../client/roostClient.js";
import type { CliClusterOptions, ClusterClient, foldLocally } from "../client/transport.js";

export interface CliDeps {
  withClusterOptions: (c: Command, timeoutHelp?: string) => Command;
  withClient: <T>(o: CliClusterOptions, fn: (c: RoostClient) => Promise<T>) => Promise<T>;
  /** Ask the leader; with none answering, fold the log here and answer from that. */
  readWithFallback: <T>(
    client: ClusterClient,
    op: string,
    data: unknown,
    local: (s: Awaited<ReturnType<typeof foldLocally>>) => T | null,
    what: string,
  ) => Promise<T>;
  jobKeyArg: (v: string) => string;
  userArg: (v: string) => string;
  keyArg: (v: string) => string;
  parseInstances: (v: string) => number[];
  newKey: () => string;
  keyFlag: string;
  keyHelp: string;
}
