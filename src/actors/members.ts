// Where scheduler replicas say who they are: id, pid, host, role, epoch and how far they have
// folded. `roost cluster status` reads it, with or without a leader. On NATS it is a KV bucket
// whose entries expire after 10 s, so a replica that died disappears by itself.

import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";

export interface MemberStatus {
  id: string;
  pid: number;
  host: string;
  role: "leader" | "standby";
  epoch: number;
  appliedSeq: number;
  ts: number;
}

export interface MemberBoard {
  put(m: MemberStatus): Promise<void>;
  list(): Promise<MemberStatus[]>;
}

export class KvMemberBoard implements MemberBoard {
  private constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection, opts: { bucket?: string; replicas?: number } = {}): Promise<KvMemberBoard> {
    const kv = await new Kvm(nc).create(opts.bucket ?? "roost_members", { history: 1, ttl: 10_000, replicas: opts.replicas ?? 1 });
    return new KvMemberBoard(kv);
  }

  async put(m: MemberStatus): Promise<void> {
    await this.kv.put(m.id.replace(/[^A-Za-z0-9_-]/g, "_"), JSON.stringify(m));
  }

  async list(): Promise<MemberStatus[]> {
    const out: MemberStatus[] = [];
    for await (const k of await this.kv.keys()) {
      const e = await this.kv.get(k).catch(() => null);
      if (e && e.operation === "PUT" && e.value.length) out.push(JSON.parse(new TextDecoder().decode(e.value)) as MemberStatus);
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }
}

export class MemoryMemberBoard implements MemberBoard {
  private readonly members = new Map<string, MemberStatus>();
  async put(m: MemberStatus): Promise<void> {
    this.members.set(m.id, m);
  }
  async list(): Promise<MemberStatus[]> {
    return [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  }
}
