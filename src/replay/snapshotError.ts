// Its own module so that every part of the snapshot codec (snapshot.ts, taskColumns.ts,
// idIndex.ts) can throw it without importing the others.

/** A snapshot that is not one, is of another format version, or does not decode to its hash. */
export class SnapshotError extends Error {
  override name = "SnapshotError";
}
