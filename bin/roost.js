#!/usr/bin/env -S node --max-semi-space-size=32
// The flag is the scheduler's (src/cli/nodeFlags.ts says why); harmless to the other commands.
// The `roost` command: a thin launcher for the compiled CLI (npm ci runs the build).
import "../dist/src/cli/main.js";
