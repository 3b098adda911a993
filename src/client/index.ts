// The package's entry point (`import { RoostClient } from "roost"`): the typed API v1 client and
// its types. Everything else in the package is the scheduler, its CLI and its tools.

export type { ErrorCode } from "../api/errors.js";
export type * from "./roostClient.js";
export { RoostClient } from "./roostClient.js";
export { ClientError as RoostError } from "./transport.js";
