// Domain vocabulary shared by the fold, the actors, the agent and the CLI.
// Names follow Aurora (role/environment/name, instances, tier, priority, maxTaskFailures),
// in camelCase.

export type JobKeyString = string; // "role/environment/name"

export interface JobKey {
  role: string;
  environment: string;
  name: string;
}

export function jobKeyString(k: JobKey): JobKeyString {
  return `${k.role}/${k.environment}/${k.name}`;
}

export function parseJobKey(s: string): JobKey {
  const parts = s.split("/");
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) {
    throw new Error(`job key "${s}" must have the form ROLE/ENV/NAME`);
  }
  return { role: parts[0], environment: parts[1], name: parts[2] };
}

export interface Resources {
  cpus: number;
  ramMb: number;
  diskMb: number;
  gpus?: number;
}

/** One process of a task (Thermos-style): a shell command line. */
export interface ProcessSpec {
  name: string;
  cmdline: string;
}

/** What every instance of a job runs. Stored in JobCreated; tasks refer to it by version. */
export interface TaskConfig {
  service: boolean;
  tier: string;
  priority: number;
  maxTaskFailures: number; // -1 = unlimited; ignored for services
  resources: Resources & { ports: string[] };
  constraints: Record<string, string>;
  processes: ProcessSpec[];
}

export interface JobConfig extends JobKey {
  instances: number;
  task: TaskConfig;
}

/** Agent-advertised capacity. Port ranges are inclusive [lo, hi] pairs. */
export interface AgentResources extends Resources {
  ports: Array<[number, number]>;
}
