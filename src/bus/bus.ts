// The message bus between the scheduler, its agents and its clients. Two implementations:
// NatsBus (core NATS request/reply) and MemoryBus (in-process, for simulation and `roost dev`
// without a nats-server). Payloads are plain MessagePack.
//
// Subjects (the "bus API"; other tools rely on these names):
//   roost.api.v1.<role>.<op>       client → leader requests; also roost.api.v1.admin.<op> and
//   roost.api.v1.cluster.<op>      roost.api.v1.cluster.<op> (the catalog: api/v1.ts)
//   roost.agent.<agentId>.register agent → leader, request; the reply carries the leader's epoch
//   roost.agent.<agentId>.heartbeat agent → leader, publish
//   roost.agent.<agentId>.status   agent → leader, request; the reply is the acknowledgement
//   roost.agent.<agentId>.launch   leader → agent, request
//   roost.agent.<agentId>.kill     leader → agent, request
//   roost.leader                   leader → all, publish when a leader takes over
//
// An agent speaks only on subjects that carry its own id, so nats-server's permissions bind each
// message to the agent that sends it (a user per agent may publish roost.agent.<its id>.* only;
// natsServer/auth.ts). The leader also refuses a body whose agentId is not its subject's: until
// agents had subjects of their own, any client could report status for any agent.
// <agentId> is the id with each "." written "~" (agentToken).

/**
 * What the bus knows about a request besides its body. A body the bus could not decode, or one
 * over the subscription's `maxBytes`, reaches the handler as null with `decodeError` or
 * `tooLarge` set, so the handler's own error shape answers it (the API's {code, message}).
 */
export interface RequestMeta {
  /** The request came as JSON (header Content-Type: application/json); its reply goes back as JSON. */
  json: boolean;
  /** The body's size in bytes (0 on the in-process bus). */
  bytes: number;
  decodeError?: string;
  tooLarge?: boolean;
}

export type Handler = (data: unknown, subject: string, meta: RequestMeta) => unknown | Promise<unknown>;

export interface ServeOptions {
  /** Bodies over this many bytes are not decoded: the handler sees meta.tooLarge. */
  maxBytes?: number;
  /** Subjects this server leaves to others: no reply at all (another subscriber answers them). */
  ignore?: (subject: string) => boolean;
  /** A NATS queue group: one member of the group answers each request (every replica serves, one answers). */
  queue?: string;
}

/**
 * A request nobody answered. `timedOut` tells the two cases apart: false when the bus knew at once
 * that nobody serves the subject (NATS's "no responders": no subscription anywhere in the
 * cluster, as when the process that held it died), true when someone may serve it but did not
 * answer in time (busy, stalled, or gone without the bus knowing yet).
 */
export class NoResponderError extends Error {
  override name = "NoResponderError";
  constructor(
    message: string,
    readonly timedOut = false,
  ) {
    super(message);
  }
}

export interface Bus {
  /** Request/reply. Rejects with NoResponderError when nobody listens, or on timeout. */
  request<T = unknown>(subject: string, data: unknown, timeoutMs?: number): Promise<T>;
  publish(subject: string, data: unknown): void;
  /**
   * Serve a subject. The handler's return value (awaited) is the reply when the message was a
   * request. A thrown error becomes a reply {error: message}. `subject` may end in ">".
   */
  serve(subject: string, handler: Handler, opts?: ServeOptions): () => void;
  /**
   * Be told each time the connection is back after it was lost (NatsBus only: a MemoryBus never
   * loses one). What was published or requested while it was down is gone (the NATS client
   * drops its outbound buffer when it dials again); this is the moment to send it again.
   */
  onReconnect?(listener: () => void): () => void;
  close(): Promise<void>;
}

/** The reply shape of every API request that can fail. */
export type Reply<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * An agent id as one subject token. Ids may be dotted host names (agent/protocol.ts), and a dot
 * splits a NATS subject, so a dot is written "~" (no id holds one): host1.dc1 → host1~dc1.
 */
export const agentToken = (agentId: string): string => agentId.replaceAll(".", "~");

export const subjects = {
  register: (agentId: string) => `roost.agent.${agentToken(agentId)}.register`,
  heartbeat: (agentId: string) => `roost.agent.${agentToken(agentId)}.heartbeat`,
  status: (agentId: string) => `roost.agent.${agentToken(agentId)}.status`,
  /** What the leader serves: every agent's register, heartbeat and status subjects. */
  anyAgent: { register: "roost.agent.*.register", heartbeat: "roost.agent.*.heartbeat", status: "roost.agent.*.status" },
  launch: (agentId: string) => `roost.agent.${agentToken(agentId)}.launch`,
  kill: (agentId: string) => `roost.agent.${agentToken(agentId)}.kill`,
  /** What a task's processes are doing (the leader asks for `roost task status`). */
  inspect: (agentId: string) => `roost.agent.${agentToken(agentId)}.inspect`,
  leader: "roost.leader",
  /**
   * A scheduler process answers here while it lives (its lease token: one per process). A
   * standby asks the lease holder's: "no responders" means its connection is gone (actors/lease.ts).
   */
  schedulerAlive: (token: string) => `roost.scheduler.${token}.alive`,
};

/** The agent id in an agent's own subject (roost.agent.<id>.<verb>), or null. */
export function agentOfSubject(subject: string): string | null {
  const parts = subject.split(".");
  return parts.length === 4 && parts[0] === "roost" && parts[1] === "agent" ? parts[2]!.replaceAll("~", ".") : null;
}
