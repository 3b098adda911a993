// Service discovery, the reading side: a job's live endpoints, read from the discovery bucket
// itself (storage/discoveryBucket.ts), so it answers with no leader up; and, with a watch, every
// change in the order the bucket took it. RoostClient.discover and `roost discover` are built on it.
//
// Nothing read is trusted: a key that is no endpoint key and a value that is not an endpoint
// (views/discovery.ts decodeEndpoint) are skipped with a warning naming the key and what is wrong,
// never thrown: a garbage value in the bucket must not take every client down with it. The input
// is checked like an API request (the job key's schema, invalidRequest's wording), before
// anything is read.

import { Type } from "../vendor/typebox.js";
import { invalidRequest } from "../api/errors.js";
import { JobKeySchema } from "../api/requests.js";
import { checker, formatProblems } from "../domain/validate.js";
import { NoBucketError, readBucket } from "../storage/discoveryBucket.js";
import { decodeEndpoint, discoveryBucket, type Endpoint, encodeEndpoint, jobKeyPrefix, parseEndpointKey } from "../views/discovery.js";
import { ClientError, type ClusterClient, NatsClient, permissionDenied, WaitTimeoutError, within } from "./transport.js";

/** One live instance of a job: where it listens, and which task that is. */
export interface DiscoveredEndpoint extends Endpoint {
  instance: number;
}

export interface DiscoverReply {
  job: string;
  /** Sorted by instance. */
  endpoints: DiscoveredEndpoint[];
}

/** A change of a job's endpoints: an instance announced (or moved), or withdrawn. */
export type EndpointChange = { op: "put"; instance: number; endpoint: DiscoveredEndpoint } | { op: "delete"; instance: number };

const DiscoverRequest = Type.Object({ job: JobKeySchema, watch: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
const checkDiscover = checker(DiscoverRequest);

/** The key filter of the job's endpoints (`<prefix>.*`), or the INVALID_REQUEST the input deserves. */
function checkDiscoverInput(job: unknown, watch: unknown): string {
  const req = watch === undefined ? { job } : { job, watch };
  const problems = checkDiscover(req);
  if (problems.length > 0) {
    const e = invalidRequest("discover", problems);
    throw new ClientError(e.message, "INVALID_REQUEST", e.field);
  }
  try {
    return `${jobKeyPrefix(job as string)}.*`;
  } catch (err) {
    const problem = [{ field: "job", rule: `must be well-formed: ${(err as Error).message}` }];
    throw new ClientError(`invalid discover request (1 problem): ${formatProblems(problem)}`, "INVALID_REQUEST", "job");
  }
}

/** Where the endpoints are read: the NATS connection and the bucket. */
function bucketOf(c: ClusterClient): { client: NatsClient; bucket: string } {
  if (!(c instanceof NatsClient)) {
    throw new ClientError(
      `service discovery reads the JetStream KV bucket, and ${c.where} is an embedded dev cluster (no NATS): run \`roost dev\` with nats-server`,
    );
  }
  try {
    return { client: c, bucket: c.discovery ?? discoveryBucket(c.stream) };
  } catch (err) {
    throw new ClientError((err as Error).message);
  }
}

/** Turn what reading the bucket threw into what a caller can act on. */
function readError(c: NatsClient, bucket: string, err: unknown): Error {
  const denied = permissionDenied(err, c.user);
  if (denied) return denied;
  if (err instanceof ClientError) return err;
  return new ClientError(`reading the discovery bucket ${bucket} at ${c.where} failed: ${(err as Error).message}`);
}

/** The instance an entry is about, or null (with a warning) when its key is no endpoint of `job`. */
function instanceOf(job: string, key: string, warn: (msg: string) => void): number | null {
  const k = parseEndpointKey(key);
  if (k === null || k.job !== job) {
    warn(`skipped key ${JSON.stringify(key)} of the discovery bucket: it is no endpoint key of ${job}`);
    return null;
  }
  return k.instance;
}

/** The endpoint an entry's value holds, or null (with a warning naming what is wrong). */
function endpointOf(key: string, value: Uint8Array, warn: (msg: string) => void): Endpoint | null {
  const d = decodeEndpoint(value);
  if ("problems" in d) {
    warn(`skipped the value of ${JSON.stringify(key)} in the discovery bucket: ${formatProblems(d.problems)}`);
    return null;
  }
  return d.endpoint;
}

/** A job's live endpoints, sorted by instance (none when the bucket does not exist yet). */
export async function discoverOnce(c: ClusterClient, job: string, watch: unknown, warn: (msg: string) => void): Promise<DiscoverReply> {
  const filter = checkDiscoverInput(job, watch);
  const { client, bucket } = bucketOf(c);
  const live = new Map<number, Endpoint>();
  const read = async () => {
    for await (const e of readBucket(client.nc, bucket, filter, { timeoutMs: client.timeoutMs })) {
      const instance = instanceOf(job, e.key, warn);
      if (instance === null) continue;
      const endpoint = e.op === "PUT" ? endpointOf(e.key, e.value, warn) : null;
      if (endpoint) live.set(instance, endpoint);
      else live.delete(instance);
    }
  };
  try {
    await within(client.timeoutMs, `the discovery bucket ${bucket} at ${client.where}`, read());
  } catch (err) {
    if (err instanceof NoBucketError) {
      c.note(`the discovery bucket ${bucket} does not exist yet: no leader has announced an endpoint on this log`);
      return { job, endpoints: [] };
    }
    if (err instanceof WaitTimeoutError) throw err;
    throw readError(client, bucket, err);
  }
  const endpoints = [...live].sort((a, b) => a[0] - b[0]).map(([instance, e]) => ({ instance, ...e }));
  return { job, endpoints };
}

/**
 * A job's endpoints as changes: the current ones first (as puts), then every change as the bucket
 * takes it, until `signal` aborts. A delete is reported only for an instance reported before, and
 * a put only when the endpoint differs from the one reported, so a consumer can keep a map.
 */
export function watchEndpoints(
  c: ClusterClient,
  job: string,
  signal: AbortSignal | undefined,
  warn: (msg: string) => void,
): AsyncIterable<EndpointChange> {
  const filter = checkDiscoverInput(job, true);
  const { client, bucket } = bucketOf(c);
  return (async function* (): AsyncGenerator<EndpointChange> {
    const known = new Map<number, string>();
    try {
      for await (const e of readBucket(client.nc, bucket, filter, { follow: true, signal, timeoutMs: client.timeoutMs })) {
        const instance = instanceOf(job, e.key, warn);
        if (instance === null) continue;
        const endpoint = e.op === "PUT" ? endpointOf(e.key, e.value, warn) : null;
        if (endpoint === null) {
          if (known.delete(instance)) yield { op: "delete", instance };
          continue;
        }
        const same = encodeEndpoint(endpoint);
        if (known.get(instance) === same) continue;
        known.set(instance, same);
        yield { op: "put", instance, endpoint: { instance, ...endpoint } };
      }
    } catch (err) {
      if (signal?.aborted) return;
      if (err instanceof NoBucketError) {
        throw new ClientError(
          `the discovery bucket ${bucket} does not exist yet at ${client.where}: no leader has announced an endpoint on this log (watch again once one leads)`,
        );
      }
      throw readError(client, bucket, err);
    }
  })();
}
