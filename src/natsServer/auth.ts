// Who may do what on the bus: the nats-server users and subject permissions of a Roost cell.
//
// Until this existed the bus was open: any client could report status for any agent, publish
// straight onto the log's subject, or announce itself on roost.leader with a huge epoch and send
// every agent into a registration loop. The server now refuses those publishes before any Roost
// process sees them; the scheduler checks again (the role in a request against its subject,
// an agent's id against its subject), so a cell run without permissions is no weaker than before.
//
// One account, one user per identity:
//   scheduler  everything (it owns the log, roost.leader, the lease, members and snapshot buckets)
//   admin      every API and intake subject and the JetStream API for offline reads; never the
//              log's subject, roost.leader, a KV or object store write, or a stream's deletion
//   gateway    every API and intake subject (it checks its own callers' tokens: gateway/http.ts)
//   <role>     roost.api.v1.<role>.> and roost.intake.v1.<role>.> only; and reading the
//              discovery bucket (below)
//   <agent>    roost.agent.<its id>.{register,heartbeat,status}, and replies to its launch/kill
// Every identity may subscribe to _INBOX.> for replies (nats-front-door.md: a JetStream producer
// needs nothing more). That lets a client read replies meant for others if it learns their inbox;
// per-user inbox prefixes would close it and are not done yet.
//
// Service discovery (views/discovery.ts): only the scheduler writes the discovery bucket; a role
// may read it, every role's endpoints (finding another team's service is what discovery is for),
// through the few JetStream API subjects an ordered consumer on the bucket's stream takes
// (storage/discoveryBucket.ts readBucket), and nothing else of JetStream: no put, delete or purge
// ($KV.<bucket>.> is never allowed), no other stream, no stream change. The admin reads it with
// its $JS.API.> already and is denied every $KV.> write. Known gap: a role may create consumers on
// the bucket's stream, durable ones too (2.9's consumer create subject names the consumer, not
// its kind), so it can spend the server's resources there.
//
// The same function writes `roost dev --secure`'s config and ops/nats/auth.conf, so the two cannot
// drift; test/auth.nats.test.ts proves each denial against a real server.

import { agentToken } from "../bus/bus.js";
import { discoveryBucket } from "../views/discovery.js";

type IdentityKind = "scheduler" | "admin" | "gateway" | "role" | "agent";

export interface Identity {
  kind: IdentityKind;
  /** The user name; for a role its role, for an agent its agent id. */
  name: string;
  /** The password itself, or the environment variable nats-server reads it from. */
  password: string | { env: string };
}

/** Names that cannot be a role's or an agent's user: the fixed identities'. */
export const RESERVED_NAMES: readonly string[] = ["scheduler", "admin", "gateway", "cluster"];

interface Permissions {
  publish?: { allow?: string[]; deny?: string[] };
  subscribe?: { allow?: string[]; deny?: string[] };
  allow_responses?: boolean;
}

const INBOX = "_INBOX.>";

/**
 * What reading the discovery bucket takes (readBucket: an ordered pull consumer), and no more:
 * the stream's info (the client checks the stream exists), creating the consumer (2.9's create
 * subject carries its name and filter), pulling from it, and deleting it when done (else it
 * lingers 5 minutes). Checked against a real server by test/discovery.test.ts.
 */
function discoveryReads(bucket: string): string[] {
  const stream = `KV_${bucket}`;
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`,
    `$JS.API.CONSUMER.DELETE.${stream}.*`,
  ];
}

/**
 * The subject permissions of one identity. `logSubject` is the event log's (ROOST → roost.events),
 * `bucket` the discovery bucket's (ROOST → ROOST_DISCOVERY).
 */
function permissionsOf(id: Identity, logSubject: string, bucket: string): Permissions | null {
  switch (id.kind) {
    case "scheduler":
      return null;
    case "admin":
      return {
        publish: {
          allow: ["roost.api.v1.>", "roost.intake.v1.>", "$JS.API.>"],
          deny: [
            logSubject,
            "roost.leader",
            "roost.agent.>",
            "$KV.>",
            "$O.>",
            "$JS.API.STREAM.CREATE.>",
            "$JS.API.STREAM.UPDATE.>",
            "$JS.API.STREAM.DELETE.>",
            "$JS.API.STREAM.PURGE.>",
            "$JS.API.STREAM.MSG.DELETE.>",
            "$JS.API.CONSUMER.DELETE.*.roost-leader",
          ],
        },
        subscribe: { allow: [INBOX] },
      };
    case "gateway":
      return { publish: { allow: ["roost.api.v1.>", "roost.intake.v1.>"] }, subscribe: { allow: [INBOX] } };
    case "role":
      return {
        publish: { allow: [`roost.api.v1.${id.name}.>`, `roost.intake.v1.${id.name}.>`, ...discoveryReads(bucket)] },
        subscribe: { allow: [INBOX] },
      };
    case "agent": {
      const t = agentToken(id.name);
      return {
        publish: { allow: [`roost.agent.${t}.register`, `roost.agent.${t}.heartbeat`, `roost.agent.${t}.status`] },
        subscribe: { allow: [`roost.agent.${t}.launch`, `roost.agent.${t}.kill`, `roost.agent.${t}.inspect`, "roost.leader", INBOX] },
        // Replies to the leader's launch, kill and inspect requests, and nothing else besides the above.
        allow_responses: true,
      };
    }
  }
}

/** A problem with a set of identities (a duplicate name, a reserved one, a name no subject can hold). */
function checkIdentities(ids: readonly Identity[]): string | null {
  const seen = new Set<string>();
  for (const id of ids) {
    if (!/^[A-Za-z0-9_:.-]+$/.test(id.name) || id.name.length > 128)
      return `${id.kind} ${JSON.stringify(id.name)}: a user name is letters, digits, "_", ":", "." and "-", at most 128 characters`;
    if ((id.kind === "role" || id.kind === "agent") && RESERVED_NAMES.includes(id.name))
      return `${id.kind} ${JSON.stringify(id.name)}: that name is reserved for Roost's own identity`;
    if (id.kind === "role" && id.name.includes(".")) return `role ${JSON.stringify(id.name)}: a role has no "." (it is one subject token)`;
    if (seen.has(id.name)) return `${JSON.stringify(id.name)} is named twice: every identity needs its own user`;
    seen.add(id.name);
  }
  return null;
}

/**
 * The `authorization { users: [...] }` block of a nats-server config, in its own syntax: strings
 * quoted, a password read from the environment written as $NAME (nats-server resolves it).
 */
export function authorizationConf(ids: readonly Identity[], logSubject: string, opts: { discoveryBucket?: string } = {}): string {
  const bucket = opts.discoveryBucket ?? discoveryBucket("ROOST");
  const problem = checkIdentities(ids);
  if (problem) throw new Error(problem);
  const lines = ["authorization {", "  users: ["];
  for (const id of ids) {
    const pass = typeof id.password === "string" ? JSON.stringify(id.password) : `$${id.password.env}`;
    const perms = permissionsOf(id, logSubject, bucket);
    lines.push(`    # ${id.kind}`);
    lines.push(`    { user: ${JSON.stringify(id.name)}, password: ${pass}${perms ? `, permissions: ${JSON.stringify(perms)}` : ""} }`);
  }
  lines.push("  ]", "}");
  return `${lines.join("\n")}\n`;
}
