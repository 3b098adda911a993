// TypeBox, as one module.
//
// Why: typebox 1.x ships as ES modules, of which its root loads about 370 through 1,400 imports,
// and Node resolves, reads and links each one on every process start. That was 0.3 s of the 0.86 s
// a `roost --version` took (0.58 s bundled, back to back, 2026-12-04), paid again by every CLI
// call, daemon and test that spawns one: more than everything else Roost loads.
//
// So everything in src imports TypeBox from here (.dependency-cruiser.cjs forbids the package
// itself), and the build (`npm run build`) bundles this file with esbuild into one module in place
// of what tsc emits for it. The source re-exports the package unchanged, so the type-checker and the
// tests see the same API; test/build.test.ts checks that the built file imports nothing.

export type { Static, TSchema } from "typebox";
export { Type } from "typebox";
