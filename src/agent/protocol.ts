// Messages between the scheduler and its agents (bus subjects in bus/bus.ts).

import type { AgentResources, ProcessSpec, Resources } from "../domain/types.js";

export interface RegisterRequest {
  agentId: string;
  host: string;
  attributes: Record<string, string>;
  resources: AgentResources;
  bootId: string;
  /**
   * Tasks the agent is running now, re-attached ones included, and tasks whose final status
   * update it has not delivered yet (for reconciliation: none of these is gone).
   */
  running: string[];
}

export interface RegisterReply {
  ok: boolean;
  error?: string;
  schedulerId?: string;
  epoch?: number;
}

export interface LaunchRequest {
  taskId: string;
  job: string;
  instance: number;
  processes: ProcessSpec[];
  ports: Record<string, number>;
  resources: Resources;
}

export interface KillRequest {
  taskId: string;
  graceMs?: number;
}

export interface StatusRequest {
  agentId: string;
  update: {
    taskId: string;
    seq: number;
    state: "STARTING" | "RUNNING" | "FINISHED" | "FAILED" | "KILLED" | "LOST";
    exitCode?: number;
    message?: string;
    ts: number;
  };
}

export interface Ack {
  ok: boolean;
  error?: string;
}

export interface Heartbeat {
  agentId: string;
  ts: number;
}
