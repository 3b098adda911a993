// A job update's settings as the log stores them (Aurora's JobUpdateSettings, in Roost's units):
// the types only, no policy bounds (updater/settings.ts checks those for new requests), so that
// every update any build ever logged still folds. Here, with the other logged types, so that the
// domain does not depend on the updater.

import { Type, type Static } from "../vendor/typebox.js";

const Int = Type.Integer();
const Bool = Type.Boolean();

const UpdateStrategySchema = Type.Union([
  Type.Object({ queue: Type.Object({ batchSize: Int }) }),
  Type.Object({ batch: Type.Object({ batchSize: Int, autopauseAfterBatch: Bool }) }),
  Type.Object({ variableBatch: Type.Object({ batchSizes: Type.Array(Int), autopauseAfterBatch: Bool }) }),
]);
export type UpdateStrategy = Static<typeof UpdateStrategySchema>;

/** The normalised update settings (Aurora's JobUpdateSettings, in Roost's units), as the log stores them. */
export const UpdateSettingsSchema = Type.Object({
  strategy: UpdateStrategySchema,
  watchSecs: Int,
  maxPerInstanceFailures: Int,
  maxTotalFailures: Int,
  rollbackOnFailure: Bool,
  /** Absent: not a coordinated update. */
  pulseIntervalSecs: Type.Optional(Int),
  slaAware: Bool,
});
export type UpdateSettings = Static<typeof UpdateSettingsSchema>;
