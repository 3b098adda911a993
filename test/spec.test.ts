// Job spec parsing, validation, normalisation and port templating (src/spec).

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  SpecError,
  formatConstraint,
  jobConfigToSpec,
  parseConstraint,
  parseJobSpec,
  portEnv,
  renderCmdline,
  validateJobSpec,
  type SpecIssue,
} from "../src/spec/jobSpec.js";
import { jobSchemaText } from "../src/spec/schema.js";

const root = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));

const VALID_YAML = `
role: www-data
environment: devel
name: hello
resources:
  cpus: 0.5
  ramMb: 128
  diskMb: 256
  ports: [http, admin]
processes:
  - name: server
    cmdline: "serve --port {{ports.http}} --admin {{ ports.admin }}"
`;

const VALID_JSON = JSON.stringify({
  processes: [{ cmdline: "serve --port {{ports.http}} --admin {{ ports.admin }}", name: "server" }],
  resources: { ports: ["http", "admin"], diskMb: 256, ramMb: 128, cpus: 0.5 },
  name: "hello",
  environment: "devel",
  role: "www-data",
});

/** A minimal valid spec object, to break one field at a time. */
// biome-ignore lint/suspicious/noExplicitAny: tests reach into and break any field of it
function base(): Record<string, any> {
  return {
    role: "www-data",
    environment: "devel",
    name: "hello",
    resources: { cpus: 0.5, ramMb: 128, diskMb: 256, ports: ["http"] },
    processes: [{ name: "server", cmdline: "serve {{ports.http}}" }],
  };
}

function issuesOf(f: () => unknown): SpecIssue[] {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return (err as SpecError).issues;
  }
  throw new Error("expected a SpecError, but the spec was accepted");
}

function errorOf(f: () => unknown): SpecError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return err as SpecError;
  }
  throw new Error("expected a SpecError, but the spec was accepted");
}

/** Expects exactly one issue, at `path`, whose rule contains `rule`; returns it. */
function single(spec: unknown, path: string, rule: string | RegExp): SpecIssue {
  const issues = issuesOf(() => validateJobSpec(spec));
  expect(issues.map((i) => i.path)).toEqual([path]);
  const issue = issues[0]!;
  if (typeof rule === "string") expect(issue.rule).toContain(rule);
  else expect(issue.rule).toMatch(rule);
  expect(issue.message.startsWith(`${path}: ${issue.rule}`)).toBe(true);
  return issue;
}

// Phrases that only ajv (or JSON Schema) would say.
const JARGON =
  /must NOT|must have required property|additional propert|additionalProperties|exclusiveMinimum|must match pattern|must be equal to one of|should |instancePath|schemaPath|#\//;

describe("parseJobSpec / validateJobSpec: valid specs", () => {
  it("YAML and JSON of the same spec normalise to the same config, with every default filled", () => {
    const fromYaml = parseJobSpec(VALID_YAML, "hello.yaml");
    const fromJson = parseJobSpec(VALID_JSON, "hello.json");
    expect(fromJson).toEqual(fromYaml);
    expect(JSON.stringify(fromJson)).toBe(JSON.stringify(fromYaml));
    expect(fromYaml).toEqual({
      role: "www-data",
      environment: "devel",
      name: "hello",
      instances: 1,
      task: {
        service: false,
        tier: "preemptible",
        priority: 0,
        maxTaskFailures: 1,
        resources: { cpus: 0.5, ramMb: 128, diskMb: 256, gpus: 0, ports: ["http", "admin"] },
        constraints: {},
        processes: [
          {
            name: "server",
            cmdline: "serve --port {{ports.http}} --admin {{ ports.admin }}",
            maxFailures: 1,
            daemon: false,
            ephemeral: false,
            minDuration: 5,
            final: false,
          },
        ],
        finalizationWaitSecs: 30,
      },
    });
  });

  it("normalisation is deterministic: same input twice gives equal configs with the same key order", () => {
    const a = parseJobSpec(VALID_JSON);
    const b = parseJobSpec(VALID_JSON);
    expect(a).toEqual(b);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(Object.keys(a)).toEqual(["role", "environment", "name", "instances", "task"]);
    expect(Object.keys(a.task)).toEqual([
      "service",
      "tier",
      "priority",
      "maxTaskFailures",
      "resources",
      "constraints",
      "processes",
      "finalizationWaitSecs",
    ]);
    expect(Object.keys(a.task.resources)).toEqual(["cpus", "ramMb", "diskMb", "gpus", "ports"]);
    expect(Object.keys(a.task.processes[0]!)).toEqual(["name", "cmdline", "maxFailures", "daemon", "ephemeral", "minDuration", "final"]);
  });

  it("constraints are sorted by attribute and written canonically, so equivalent specs encode alike", () => {
    const s1 = { ...base(), constraints: { rack: " r1 , r2 ", host: "limit: 01", zone: "!z1" } };
    const s2 = { ...base(), constraints: { zone: "!z1", host: "limit:1", rack: "r1,r2" } };
    const a = validateJobSpec(s1);
    expect(a.task.constraints).toEqual({ host: "limit:1", rack: "r1,r2", zone: "!z1" });
    expect(Object.keys(a.task.constraints)).toEqual(["host", "rack", "zone"]);
    expect(JSON.stringify(validateJobSpec(s2))).toBe(JSON.stringify(a));
  });

  it("keeps explicit values and accepts every field", () => {
    const cfg = validateJobSpec({
      ...base(),
      instances: 4000,
      service: true,
      tier: "preferred",
      priority: 7,
      maxTaskFailures: -1,
      resources: { cpus: 2, ramMb: 1024, diskMb: 2048, gpus: 1, ports: ["http", "health"] },
      constraints: { host: "limit:1", dedicated: "www-data/db" },
    });
    expect(cfg.instances).toBe(4000);
    expect(cfg.task).toMatchObject({ service: true, tier: "preferred", priority: 7, maxTaskFailures: -1 });
    expect(cfg.task.resources).toEqual({ cpus: 2, ramMb: 1024, diskMb: 2048, gpus: 1, ports: ["http", "health"] });
    expect(cfg.task.constraints).toEqual({ dedicated: "www-data/db", host: "limit:1" });
  });

  it("accepts every environment of Aurora's default allowed_job_environments, ^(prod|devel|test|staging\\d*)$", () => {
    for (const environment of ["devel", "test", "prod", "staging", "staging2", "staging42"]) {
      expect(validateJobSpec({ ...base(), environment }).environment).toBe(environment);
    }
  });

  it("refuses another environment quoting the pattern in force, and takes the scheduler's own pattern", () => {
    const issue = single(
      { ...base(), environment: "production" },
      "environment",
      "must match the environments this scheduler allows, ^(prod|devel|test|staging\\d*)$",
    );
    expect(issue.message).toContain('(got "production")');
    const allowed = /^(production|qa)$/;
    expect(validateJobSpec({ ...base(), environment: "production" }, { allowedEnvironments: allowed }).environment).toBe("production");
    expect(errorOf(() => validateJobSpec({ ...base(), environment: "prod" }, { allowedEnvironments: allowed })).message).toContain(
      "^(production|qa)$",
    );
    // The CLI does not know the scheduler's pattern: parseJobSpec checks the name rule only.
    expect(
      parseJobSpec(
        "role: r\nenvironment: production\nname: n\nresources: {cpus: 1, ramMb: 1, diskMb: 1}\nprocesses: [{name: p, cmdline: x}]\n",
      ).environment,
    ).toBe("production");
  });

  it("does not share arrays or objects with the input", () => {
    const spec = base();
    const cfg = validateJobSpec(spec);
    spec.resources.ports.push("other");
    spec.processes[0].name = "changed";
    expect(cfg.task.resources.ports).toEqual(["http"]);
    expect(cfg.task.processes[0]!.name).toBe("server");
  });

  it("validateJobSpec accepts a normalised JobConfig and returns it unchanged", () => {
    const cfg = parseJobSpec(VALID_YAML);
    const again = validateJobSpec(JSON.parse(JSON.stringify(cfg)));
    expect(again).toEqual(cfg);
    expect(JSON.stringify(again)).toBe(JSON.stringify(cfg));
    expect(validateJobSpec(jobConfigToSpec(cfg))).toEqual(cfg);
    const broken = JSON.parse(JSON.stringify(cfg));
    broken.task.resources.ramMb = 0;
    const issue = issuesOf(() => validateJobSpec(broken))[0]!;
    expect(issue.path).toBe("task.resources.ramMb");
  });

  it.each(["hello-service.yaml", "batch-job.yaml", "failing-batch.yaml"])("example %s parses", (file) => {
    const cfg = parseJobSpec(readFileSync(root(`examples/${file}`), "utf8"), file);
    expect(cfg.role).toBe("www-data");
    expect(cfg.environment).toBe("devel");
    expect(cfg.task.processes.length).toBeGreaterThan(0);
  });

  it("the examples are what their names say", () => {
    const hello = parseJobSpec(readFileSync(root("examples/hello-service.yaml"), "utf8"));
    expect(hello).toMatchObject({ name: "hello", instances: 3, task: { service: true } });
    expect(hello.task.resources).toEqual({ cpus: 0.1, ramMb: 64, diskMb: 64, gpus: 0, ports: ["http"] });
    expect(hello.task.processes[0]!.cmdline).toContain("ROOST_PORT_HTTP");
    const batch = parseJobSpec(readFileSync(root("examples/batch-job.yaml"), "utf8"));
    expect(batch).toMatchObject({ instances: 1, task: { service: false } });
    const failing = parseJobSpec(readFileSync(root("examples/failing-batch.yaml"), "utf8"));
    expect(failing).toMatchObject({ instances: 1, task: { service: false, maxTaskFailures: 3 } });
    expect(failing.task.processes[0]!.cmdline).toMatch(/exit 1/);
  });
});

describe("validation rules: each error names the field and the rule", () => {
  it("missing role", () => {
    const spec = base();
    delete spec.role;
    expect(single(spec, "role", "required").rule).toBe("required");
  });

  it("missing nested required field", () => {
    const spec = base();
    delete spec.resources.cpus;
    single(spec, "resources.cpus", "required");
    const noResources = base();
    delete noResources.resources;
    single(noResources, "resources", "required"); // and no cascade of port complaints
  });

  it("bad environment", () => {
    single({ ...base(), environment: "staging-2" }, "environment", "must match the environments this scheduler allows");
    single({ ...base(), environment: ".." }, "environment", "letters, digits");
  });

  it("role and name: allowed characters and length", () => {
    single({ ...base(), role: "www data" }, "role", "letters, digits");
    single({ ...base(), name: "x".repeat(65) }, "name", "1 to 64 characters");
    expect(validateJobSpec({ ...base(), name: "a.b_c-D9" }).name).toBe("a.b_c-D9");
  });

  it('names are never "." or ".." and never start with "." or "-" (roles, names, processes)', () => {
    for (const bad of [".", "..", ".hidden", "-flag"]) {
      single({ ...base(), role: bad }, "role", 'not starting with "." or "-"');
      single({ ...base(), name: bad }, "name", 'not starting with "." or "-"');
      single({ ...base(), processes: [{ name: bad, cmdline: "x" }] }, "processes[0].name", 'not starting with "." or "-"');
    }
  });

  it("every number has explicit bounds (1e-300 cpus, 1e308 ramMb and priority, 2^64 diskMb are refused)", () => {
    single({ ...base(), resources: { ...base().resources, cpus: 1e-300 } }, "resources.cpus", "must be a number from 0.001 to 1024");
    single({ ...base(), resources: { ...base().resources, cpus: 0.0015 } }, "resources.cpus", "at most 3 decimal places");
    single({ ...base(), resources: { ...base().resources, ramMb: 1e308 } }, "resources.ramMb", "must be an integer from 1 to 4194304");
    single({ ...base(), resources: { ...base().resources, diskMb: 2 ** 64 } }, "resources.diskMb", "must be an integer from 1 to 67108864");
    single({ ...base(), resources: { ...base().resources, gpus: 1e9 } }, "resources.gpus", "must be an integer from 0 to 64");
    single({ ...base(), priority: 1e308 }, "priority", "must be an integer from 0 to 1000");
    single({ ...base(), maxTaskFailures: 1e6 }, "maxTaskFailures", "must be an integer from 0 to 100, or -1 for unlimited");
    single(
      { ...base(), resources: { ...base().resources, ports: ["http", ...Array.from({ length: 64 }, (_, i) => `p${i}`)] } },
      "resources.ports",
      "at most 64",
    );
    single(
      { ...base(), processes: Array.from({ length: 33 }, (_, i) => ({ name: `p${i}`, cmdline: "x" })) },
      "processes",
      "1 to 32 processes",
    );
  });

  it("a command line has no NUL byte and is under 64 KiB (exec cannot run either)", () => {
    single({ ...base(), processes: [{ name: "p", cmdline: "echo a\u0000b" }] }, "processes[0].cmdline", "without NUL bytes");
    single({ ...base(), processes: [{ name: "p", cmdline: "x".repeat(900 * 1024) }] }, "processes[0].cmdline", "at most 65535 bytes");
    // Counted in UTF-8 bytes: 30,000 three-byte characters are 90,000 bytes.
    single({ ...base(), processes: [{ name: "p", cmdline: "東".repeat(30_000) }] }, "processes[0].cmdline", "at most 65535 bytes");
    expect(validateJobSpec({ ...base(), processes: [{ name: "p", cmdline: "x".repeat(65_535) }] }).task.processes[0]!.cmdline).toHaveLength(
      65_535,
    );
  });

  it('constraints read only their own names: "constructor" is an attribute like any other', () => {
    const cfg = validateJobSpec({ ...base(), constraints: { constructor: "x", toString: "limit:1" } });
    expect(cfg.task.constraints).toEqual({ constructor: "x", toString: "limit:1" });
    single(
      { ...base(), constraints: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`a${i}`, "x"])) },
      "constraints",
      "at most 32",
    );
  });

  it("negative ramMb", () => {
    const issue = single(
      { ...base(), resources: { ...base().resources, ramMb: -5 } },
      "resources.ramMb",
      "must be an integer from 1 to 4194304",
    );
    expect(issue.message).toBe("resources.ramMb: must be an integer from 1 to 4194304 (got -5)");
  });

  it("fractional ramMb", () => {
    const issue = single(
      { ...base(), resources: { ...base().resources, ramMb: 12.5 } },
      "resources.ramMb",
      "must be an integer from 1 to 4194304",
    );
    expect(issue.message).toContain("(got 12.5)");
  });

  it("cpus must be positive; gpus may be 0 but not negative", () => {
    single({ ...base(), resources: { ...base().resources, cpus: 0 } }, "resources.cpus", "must be a number from 0.001 to 1024");
    single({ ...base(), resources: { ...base().resources, gpus: -1 } }, "resources.gpus", "must be an integer from 0 to 64");
  });

  it("wrong types are described in words", () => {
    single({ ...base(), service: "yes" }, "service", "must be true or false");
    single({ ...base(), resources: { ...base().resources, ramMb: "64Mi" } }, "resources.ramMb", "must be an integer from 1 to 4194304");
    single({ ...base(), resources: "big" }, "resources", "must be a mapping");
    single({ ...base(), processes: {} }, "processes", "must be a list");
  });

  it("unknown field at top level", () => {
    const issue = single({ ...base(), colour: "blue" }, "colour", "unknown field");
    expect(issue.rule).toBe("unknown field");
  });

  it("unknown nested fields, with a suggestion for likely typos", () => {
    const issue = single({ ...base(), resources: { ...base().resources, ram_mb: 5 } }, "resources.ram_mb", "unknown field");
    expect(issue.message).toContain('did you mean "ramMb"?');
    const spec = base();
    spec.processes[0].user = "root";
    single(spec, "processes[0].user", "unknown field");
  });

  it("duplicate process names", () => {
    const spec = base();
    spec.processes = [
      { name: "a", cmdline: "true" },
      { name: "b", cmdline: "true" },
      { name: "a", cmdline: "false" },
    ];
    const issue = single(spec, "processes[2].name", "must be unique among processes");
    expect(issue.message).toContain("processes[0]");
  });

  it("at least one process, each with a non-empty cmdline", () => {
    single({ ...base(), processes: [] }, "processes", "1 to 32 processes");
    single({ ...base(), processes: [{ name: "p", cmdline: "  " }] }, "processes[0].cmdline", "must be a non-empty command line");
  });

  it("undeclared port used in a cmdline", () => {
    const spec = base();
    spec.processes[0].cmdline = "serve {{ports.http}} --admin {{ ports.admin }}";
    const issue = single(spec, "processes[0].cmdline", "may only use ports declared in resources.ports");
    expect(issue.message).toContain("{{ports.admin}}");
    const noPorts = base();
    delete noPorts.resources.ports;
    single(noPorts, "processes[0].cmdline", "declared in resources.ports");
  });

  it("Aurora's {{thermos.ports[NAME]}} gets a hint", () => {
    const spec = base();
    spec.processes[0].cmdline = "serve {{thermos.ports[http]}}";
    const issue = single(spec, "processes[0].cmdline", "{{ports.NAME}}");
    expect(issue.message).toContain("{{ports.http}}");
  });

  it("port names: pattern and uniqueness", () => {
    single({ ...base(), resources: { ...base().resources, ports: ["http", "Admin"] } }, "resources.ports[1]", "must be a port name");
    single({ ...base(), resources: { ...base().resources, ports: ["http", "http"] } }, "resources.ports[1]", "must not repeat");
  });

  it.each([
    ["limit:0", "at least 1"],
    ["limit:x", "whole number"],
    ["limit:1.5", "whole number"],
    ["a,,b", "empty item"],
    [",", "empty item"],
    ["!", "empty"],
    ["a!b", '"!"'],
    ["!!a", '"!"'],
    ["!limit:2", "cannot be negated"],
  ])("malformed constraint %j", (value, why) => {
    const issue = single({ ...base(), constraints: { host: value } }, "constraints.host", 'must be "limit:N"');
    expect(issue.message).toContain(why);
    expect(() => parseConstraint(value)).toThrow(/invalid constraint/);
  });

  it("constraint values must be strings and attribute names well formed", () => {
    single({ ...base(), constraints: { host: 2 } }, "constraints.host", 'must be "limit:N"');
    single({ ...base(), constraints: { host: "" } }, "constraints.host", 'must be "limit:N"');
    single({ ...base(), constraints: { "rack id": "a" } }, 'constraints["rack id"]', "attribute names must be");
  });

  it("dedicated takes ROLE/NAME for this job's role or */NAME", () => {
    expect(validateJobSpec({ ...base(), constraints: { dedicated: "*/db" } }).task.constraints).toEqual({ dedicated: "*/db" });
    single({ ...base(), constraints: { dedicated: "other/db" } }, "constraints.dedicated", "ROLE/NAME");
    single({ ...base(), constraints: { dedicated: "db" } }, "constraints.dedicated", "ROLE/NAME");
    single({ ...base(), constraints: { dedicated: "limit:1" } }, "constraints.dedicated", "ROLE/NAME");
  });

  it("instances 0 and 4001 are out of range; 1 and 4000 are fine", () => {
    single({ ...base(), instances: 0 }, "instances", "must be an integer from 1 to 4000");
    single({ ...base(), instances: 4001 }, "instances", "must be an integer from 1 to 4000");
    single({ ...base(), instances: 2.5 }, "instances", "must be an integer from 1 to 4000");
    expect(validateJobSpec({ ...base(), instances: 1 }).instances).toBe(1);
    expect(validateJobSpec({ ...base(), instances: 4000 }).instances).toBe(4000);
  });

  it("tier not in the enum", () => {
    const issue = single({ ...base(), tier: "gold" }, "tier", "must be one of");
    expect(issue.rule).toContain("preferred");
    expect(issue.rule).toContain("preemptible");
    expect(issue.rule).toContain("revocable");
  });

  it("priority and maxTaskFailures bounds", () => {
    single({ ...base(), priority: -1 }, "priority", "must be an integer from 0 to 1000");
    single({ ...base(), maxTaskFailures: -2 }, "maxTaskFailures", "-1 for unlimited");
    expect(validateJobSpec({ ...base(), maxTaskFailures: -1 }).task.maxTaskFailures).toBe(-1);
  });

  it("a document that is not a mapping", () => {
    expect(issuesOf(() => validateJobSpec([]))[0]!.rule).toContain("must be a mapping");
    expect(issuesOf(() => parseJobSpec(""))[0]!.message).toContain("empty");
    expect(issuesOf(() => parseJobSpec("just a string"))[0]!.path).toBe("");
  });

  it("YAML syntax errors carry the line and column", () => {
    const text = "role: www-data\nenvironment: devel\nresources:\n  cpus: [1, 2\nname: x\n";
    const err = errorOf(() => parseJobSpec(text, "bad.yaml"));
    expect(err.issues.length).toBeGreaterThan(0);
    expect(err.issues[0]!.rule).toMatch(/^YAML syntax error: /);
    expect(err.issues[0]!.line).toBeGreaterThanOrEqual(4);
    expect(err.message).toContain("bad.yaml");
    expect(err.message).toMatch(/line \d+, column \d+: YAML syntax error/);
  });

  it("duplicate keys are a YAML error with the line", () => {
    const err = errorOf(() => parseJobSpec("role: a\nname: b\nrole: c\n"));
    expect(err.issues[0]!.line).toBe(3);
    expect(err.issues[0]!.rule).toMatch(/unique/);
  });

  it("validation issues from a file point at the line of the field", () => {
    const text = VALID_YAML.replace("ramMb: 128", "ramMb: -5").replace("resources:", "colour: blue\nresources:");
    const issues = issuesOf(() => parseJobSpec(text, "hello.yaml"));
    const lines = text.split("\n");
    const ram = issues.find((i) => i.path === "resources.ramMb")!;
    expect(lines[ram.line! - 1]).toContain("ramMb: -5");
    expect(lines[ram.line! - 1]!.indexOf("-5") + 1).toBe(ram.column);
    const colour = issues.find((i) => i.path === "colour")!;
    expect(lines[colour.line! - 1]).toBe("colour: blue");
  });

  it("reports every problem together, one per line, in plain words", () => {
    const spec = {
      environment: "prod!",
      name: "hello",
      instances: 0,
      tier: "gold",
      extra: true,
      resources: { cpus: 1, ramMb: -5, diskMb: 1.5, ports: ["http"] },
      constraints: { host: "limit:0" },
      processes: [
        { name: "a", cmdline: "x {{ports.nope}}" },
        { name: "a", cmdline: "y" },
      ],
    };
    const err = errorOf(() => validateJobSpec(spec));
    const paths = err.issues.map((i) => i.path).sort();
    expect(paths).toEqual(
      [
        "role",
        "environment",
        "instances",
        "tier",
        "extra",
        "resources.ramMb",
        "resources.diskMb",
        "constraints.host",
        "processes[0].cmdline",
        "processes[1].name",
      ].sort(),
    );
    const lines = err.message.split("\n");
    expect(lines[0]).toBe("invalid job spec (10 problems):");
    expect(lines).toHaveLength(11);
    for (const issue of err.issues) {
      expect(lines).toContain(`  ${issue.message}`);
      expect(issue.message.startsWith(`${issue.path}: ${issue.rule}`)).toBe(true);
    }
    expect(err.message).not.toMatch(JARGON);
  });

  it("no message anywhere is ajv jargon", () => {
    const broken: unknown[] = [
      { ...base(), role: 5 },
      { ...base(), environment: "x" },
      { ...base(), instances: "3" },
      { ...base(), tier: 1 },
      { ...base(), foo: 1 },
      { ...base(), resources: { cpus: -1, ramMb: 0, diskMb: "1", gpus: 0.5, ports: "http", bogus: 1 } },
      { ...base(), resources: { ...base().resources, ports: [1, "A", "a", "a"] } },
      { ...base(), constraints: [5, { order: "a" }] },
      { ...base(), lifecycle: { http: true } },
      { ...base(), healthCheck: { intervalSecs: 0, http: { endpoint: "health" } } },
      { ...base(), constraints: { "a b": "x", c: null } },
      { ...base(), processes: [null, { name: "" }, { cmdline: "" }] },
      null,
      42,
    ];
    for (const spec of broken) {
      const err = errorOf(() => validateJobSpec(spec));
      expect(err.issues.length).toBeGreaterThan(0);
      expect(err.message, err.message).not.toMatch(JARGON);
    }
  });
});

describe("ports", () => {
  it("renderCmdline substitutes {{ports.NAME}}, with or without spaces inside the braces", () => {
    expect(renderCmdline("serve --port {{ports.http}} --admin {{ ports.admin }} {{ports.http}}", { http: 31001, admin: 31002 })).toBe(
      "serve --port 31001 --admin 31002 31001",
    );
    expect(renderCmdline("no ports here {{other}}", {})).toBe("no ports here {{other}}");
  });

  it("renderCmdline throws a clear error for an unknown port", () => {
    expect(() => renderCmdline("serve {{ports.admin}}", { http: 31001 })).toThrow(/ports\.admin.*"admin".*assigned: http/);
  });

  it("portEnv names each port ROOST_PORT_<NAME>", () => {
    expect(portEnv({ http: 31001, admin_api: 31002 })).toEqual({ ROOST_PORT_HTTP: "31001", ROOST_PORT_ADMIN_API: "31002" });
    expect(portEnv({})).toEqual({});
  });
});

describe("parseConstraint", () => {
  it("parses limits, value lists and negated lists", () => {
    expect(parseConstraint("limit:2")).toEqual({ kind: "limit", limit: 2 });
    expect(parseConstraint("rack1")).toEqual({ kind: "value", values: ["rack1"], negated: false });
    expect(parseConstraint("a, b")).toEqual({ kind: "value", values: ["a", "b"], negated: false });
    expect(parseConstraint("!a,b")).toEqual({ kind: "value", values: ["a", "b"], negated: true });
    expect(parseConstraint("www-data/db")).toEqual({ kind: "value", values: ["www-data/db"], negated: false });
  });

  it("formatConstraint is its inverse on canonical strings", () => {
    for (const s of ["limit:3", "a", "a,b", "!a,b"]) expect(formatConstraint(parseConstraint(s))).toBe(s);
  });
});

describe("job.schema.json", () => {
  it("is exactly the schema constant (regenerate: npm run build && node dist/src/spec/writeSchema.js)", () => {
    expect(readFileSync(root("src/spec/job.schema.json"), "utf8")).toBe(jobSchemaText());
  });
});

describe("services: processes, order constraints, health checks, the kill sequence", () => {
  const procs = [
    { name: "a", cmdline: "x" },
    { name: "b", cmdline: "y" },
    { name: "fin", cmdline: "z", final: true },
  ];
  const svc = (extra: Record<string, unknown>) => ({
    ...base(),
    resources: { ...base().resources, ports: ["health"] },
    processes: procs,
    ...extra,
  });

  it("fills Thermos's process defaults and Aurora's health check defaults", () => {
    const cfg = validateJobSpec(svc({ healthCheck: {} }));
    expect(cfg.task.processes[0]).toEqual({
      name: "a",
      cmdline: "x",
      maxFailures: 1,
      daemon: false,
      ephemeral: false,
      minDuration: 5,
      final: false,
    });
    expect(cfg.task.healthCheck).toEqual({
      initialIntervalSecs: 15,
      intervalSecs: 10,
      timeoutSecs: 1,
      maxConsecutiveFailures: 0,
      minConsecutiveSuccesses: 1,
      http: { endpoint: "/health", expectedResponse: "ok", expectedResponseCode: 0 },
    });
    expect(cfg.task.finalizationWaitSecs).toBe(30);
    expect(cfg.task.lifecycle).toBeUndefined();
    expect(validateJobSpec(svc({ healthCheck: { shell: { command: "true" } } })).task.healthCheck?.shell).toEqual({ command: "true" });
    expect(validateJobSpec(svc({ lifecycle: { http: false } })).task.lifecycle).toEqual({ http: false });
  });

  it("takes Aurora's constraints list: order entries become processConstraints, attribute entries placement", () => {
    const cfg = validateJobSpec(svc({ constraints: [{ order: ["a", "b"] }, { host: "limit:1" }] }));
    expect(cfg.task.processConstraints).toEqual([{ order: ["a", "b"] }]);
    expect(cfg.task.constraints).toEqual({ host: "limit:1" });
    // And it round-trips through the canonical form.
    expect(validateJobSpec(jobConfigToSpec(cfg))).toEqual(cfg);
    expect(validateJobSpec(cfg)).toEqual(cfg);
  });

  it.each([
    [{ constraints: [5] }, "constraints[0]", "must be {order: [process names]}"],
    [{ constraints: [{ host: "limit:1" }, { host: "limit:2" }] }, "constraints[1].host", "must not repeat an attribute"],
    [{ constraints: [{ order: ["a", "nope"] }] }, "constraints[0].order[1]", "must name a process of this task"],
    [{ processConstraints: [{ order: ["a", "a"] }] }, "processConstraints[0].order[1]", "must not repeat a process"],
    [
      { processConstraints: [{ order: ["fin", "a"] }] },
      "processConstraints[0].order[1]",
      "must not put a final process before a regular one",
    ],
    [{ processConstraints: [{ order: ["a", "b"] }, { order: ["b", "a"] }] }, "processConstraints", "must not order processes in a cycle"],
    [{ processes: [{ name: "fin", cmdline: "z", final: true }] }, "processes", "must have a process that is not final"],
    [{ processes: [{ name: "a", cmdline: "x", maxFailures: -1 }] }, "processes[0].maxFailures", "from 0 to 1000"],
    [{ finalizationWaitSecs: 61 }, "finalizationWaitSecs", "from 0 to 60"],
    [{ healthCheck: { intervalSecs: 0 } }, "healthCheck.intervalSecs", "greater than 0"],
    [{ healthCheck: { minConsecutiveSuccesses: 0 } }, "healthCheck.minConsecutiveSuccesses", "from 1 to 1000"],
    [{ healthCheck: { http: {}, shell: { command: "true" } } }, "healthCheck", "must have http or shell, not both"],
    [{ healthCheck: { http: { endpoint: "health" } } }, "healthCheck.http.endpoint", "must be a URL path"],
    [{ healthCheck: { shell: {} } }, "healthCheck.shell.command", "required"],
    [{ resources: { ...base().resources, ports: ["http"] }, healthCheck: {} }, "healthCheck", 'needs a port named "health"'],
    [{ lifecycle: { http: true } }, "lifecycle.http", "must be false, or a mapping"],
    [{ lifecycle: { http: { port: "admin" } } }, "lifecycle.http.port", "must name a port declared"],
  ])("refuses %j at %s: %s", (extra, path, rule) => {
    single(svc(extra), path, rule);
  });
});

describe("job-level settings: updateConfig (Aurora's UpdateConfig) and cron", () => {
  it("normalises updateConfig to its effective strategy, and keeps the cron fields with their defaults", () => {
    const cfg = validateJobSpec({
      ...base(),
      instances: 6,
      updateConfig: { batchSize: 2, watchSecs: 10 },
      cronSchedule: " 0 9 * * MON-FRI ",
    });
    expect(cfg.updateConfig).toEqual({
      strategy: { queue: { batchSize: 2 } },
      watchSecs: 10,
      maxPerInstanceFailures: 0,
      maxTotalFailures: 0,
      rollbackOnFailure: true,
      slaAware: false,
    });
    expect([cfg.cronSchedule, cfg.cronTimezone, cfg.cronCollisionPolicy]).toEqual(["0 9 * * MON-FRI", "UTC", "KILL_EXISTING"]);
    // Job-level, not task-level: the config form round-trips them.
    expect(cfg.task).not.toHaveProperty("updateConfig");
    expect(validateJobSpec(cfg)).toEqual(cfg);
    expect(validateJobSpec(jobConfigToSpec(cfg))).toEqual(cfg);
    expect(validateJobSpec(base())).not.toHaveProperty("updateConfig");
  });

  it.each([
    [{ updateConfig: { pulseIntervalSecs: 30 } }, "updateConfig.pulseIntervalSecs", "at least 60"],
    [
      { updateConfig: { waitForBatchCompletion: true, strategy: { batch: { batchSize: 2 } } } },
      "updateConfig.waitForBatchCompletion",
      "cannot be combined",
    ],
    [
      { updateConfig: { strategy: { variableBatch: { batchSizes: [1, 0] } } } },
      "updateConfig.strategy.variableBatch.batchSizes[1]",
      "greater than 0",
    ],
    [{ updateConfig: { maxTotalFailures: -1 } }, "updateConfig.maxTotalFailures", "maxFailedInstances must be non-negative."],
    [{ cronSchedule: "0 9 1 * MON" }, "cronSchedule", "day of month and day of week are both set"],
    [{ cronSchedule: "@daily" }, "cronSchedule", "@-shortcuts are not supported"],
    [{ cronSchedule: "0 9 * * *", cronCollisionPolicy: "RUN_OVERLAP" }, "cronCollisionPolicy", "RUN_OVERLAP is deprecated and refused"],
    [{ cronSchedule: "0 9 * * *", cronTimezone: "Mars/Base" }, "cronTimezone", "is not a time zone"],
    [{ cronSchedule: "0 9 * * *", service: true }, "service", "a cron job cannot be a service"],
  ])("refuses %j at %s: %s", (extra, path, rule) => {
    single({ ...base(), ...extra }, path, rule);
  });
});
