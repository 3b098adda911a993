#!/usr/bin/env node
// The `roost` command: a thin launcher for the compiled CLI (npm ci runs the build).
import "../dist/src/cli/main.js";
