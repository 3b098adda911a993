// `roost discover ROLE/ENV/NAME [--watch] [--json]`: a job's live endpoints, read from the
// discovery bucket (client/discovery.ts), so it works with no scheduler up. One line per instance
// RUNNING with a port:
//
//   0 host-1 http=21003 task=www-data-devel-hello-0-9a6dba87
//
// --watch prints the current ones as "+" lines, then a "+" or "-" line per change as the bucket
// takes it, until SIGINT; --json prints JSON lines instead ({job, endpoints}, or one change per
// line). A job with no endpoints is an answer, not an error: it says so and exits 0. Garbage in
// the bucket is skipped with a warning on stderr.

import type { Command } from "commander";
import type { DiscoveredEndpoint } from "../client/discovery.js";
import { RoostClient } from "../client/roostClient.js";
import { type CliClusterOptions, cliConnectOptions, connectClient } from "../client/transport.js";

interface DiscoverCliOptions extends CliClusterOptions {
  watch?: boolean;
}

/** `instance host name=port … task=ID`, ports by name. */
function line(e: DiscoveredEndpoint): string {
  const ports = Object.keys(e.ports)
    .sort()
    .map((name) => `${name}=${e.ports[name]}`);
  return [String(e.instance), e.host, ...ports, `task=${e.taskId}`].join(" ");
}

export function registerDiscoverCommand(
  program: Command,
  withClusterOptions: (c: Command) => Command,
  jobKeyArg: (v: string) => string,
): void {
  withClusterOptions(
    program
      .command("discover")
      .argument("<job>", "ROLE/ENV/NAME", jobKeyArg)
      .description("a job's live endpoints (instances RUNNING with a port), from the discovery bucket; no leader needed")
      .option("--watch", "print changes as they come (+ announced, - withdrawn) until Ctrl-C")
      .option("--stream <name>", "the log's stream, whose bucket is <stream>_DISCOVERY (default: the cluster file's, else ROOST)"),
  ).action(async (job: string, o: DiscoverCliOptions) => {
    const client = new RoostClient(await connectClient(cliConnectOptions(o, { follow: o.watch })));
    try {
      if (o.watch) await watch(client, job, o);
      else {
        const r = await client.discover(job);
        if (o.json) console.log(JSON.stringify(r));
        else if (r.endpoints.length === 0) console.log(`no endpoints for ${job}: no instance is RUNNING with a port`);
        else for (const e of r.endpoints) console.log(line(e));
      }
    } finally {
      await client.close();
    }
  });
}

async function watch(client: RoostClient, job: string, o: DiscoverCliOptions): Promise<void> {
  const stop = new AbortController();
  process.once("SIGINT", () => stop.abort());
  const shown = new Map<number, DiscoveredEndpoint>();
  for await (const c of client.discover(job, { watch: true, signal: stop.signal })) {
    if (o.json) {
      console.log(JSON.stringify(c));
    } else if (c.op === "put") {
      shown.set(c.instance, c.endpoint);
      console.log(`+ ${line(c.endpoint)}`);
    } else {
      const was = shown.get(c.instance);
      shown.delete(c.instance);
      console.log(`- ${was ? line(was) : String(c.instance)}`);
    }
  }
}
