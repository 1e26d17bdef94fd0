// Named crash points on the write path, on real processes (scorecard L2/D1):
// for each point a single node under concurrent writers kills itself there
// (EDGETCD_CRASH_POINT) and restarts unattended; after every restart every
// acknowledged write is present and the revision has not gone back, and after
// the last one (no crash point set) a new write succeeds. The points run as
// two chains on one data directory each, one process start per point; this
// file runs the WAL and backend chain (two files keep each under the runner's limit).
import { crashPointChainSuite, singleNodeCrashPoints } from "./crash-run.ts";

crashPointChainSuite(
  "crash points on the write path: WAL and backend (single node, real processes)",
  singleNodeCrashPoints.filter(({ point }) => point.startsWith("wal-") || point.startsWith("backend-")),
);
