// The architecture, checked (npm run lint; CI fails on a violation).
//
// - The pure core (domain, statemachines, replay, scheduling, preemptor, quota, views, updater, cron, sla, maintenance) imports no
//   adapter: nothing that does I/O, talks to NATS, runs processes or reads clocks. Adapters import
//   the core, never the other way round; biome.jsonc bans clocks, timers and randomness inside it.
// - Nothing imports in a circle: not files, and not folders (a folder cycle is two concerns that
//   cannot be understood apart).
//
// `npx depcruise src --config .dependency-cruiser.cjs` prints each violation with its path.

const CORE = "^src/(domain|statemachines|replay|scheduling|preemptor|quota|views|updater|cron|sla|maintenance)/";
const ADAPTERS = "^src/(eventlog|storage|bus|natsServer|agent|actors|cli|client|sim|api|gateway|util|history|ui|metrics)/";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "core-imports-no-adapter",
      comment:
        "The pure core must not import an adapter (eventlog, storage, bus, natsServer, agent, actors, cli, client, sim, api, gateway, util, history, ui, metrics).",
      severity: "error",
      from: { path: CORE },
      to: { path: ADAPTERS },
    },
    {
      name: "core-imports-no-spec-parser",
      comment: "The spec parser loads yaml; the core reads specs only through domain/ (limits, constraints, types).",
      severity: "error",
      from: { path: CORE },
      to: { path: "^src/spec/" },
    },
    {
      name: "typebox-through-vendor",
      comment:
        "Import TypeBox from src/vendor/typebox.ts, which the build bundles into one module: the package itself loads ~370 ES modules, 0.3 s of every process start.",
      severity: "error",
      from: { pathNot: "^src/vendor/typebox\\.ts$" },
      to: { path: "^node_modules/typebox/" },
    },
    {
      name: "no-file-cycles",
      comment: "No file imports itself through others (the leader's actors used to: each held the Scheduler, which made them all).",
      severity: "error",
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      extensions: [".ts", ".js"],
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
