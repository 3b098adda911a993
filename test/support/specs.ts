// Job specs for tests: one builder; each test file fixes its own defaults.

export function testSpec(name: string, over: Record<string, unknown> = {}, base: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    role: "www-data",
    environment: "devel",
    name,
    instances: 1,
    resources: { cpus: 0.1, ramMb: 16, diskMb: 16 },
    processes: [{ name: "main", cmdline: "sleep 1000" }],
    ...base,
    ...over,
  };
}
