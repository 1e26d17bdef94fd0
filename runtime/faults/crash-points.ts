// Test builds only: EDGETCD_CRASH_POINT=<name>[:<n>] makes the process kill
// itself with SIGKILL (no cleanup, no flush, like kill -9) the n-th time (1 if
// not given) the named point on the write path is hit. Read once by the
// composition root; src/ only sees the CrashPoints port.
import { writeSync } from "node:fs";
import { crashPointNames, type CrashPointName, type CrashPoints } from "../../src/storage/crash-points.ts";

const crashPointVariable = "EDGETCD_CRASH_POINT";

interface CrashPointSetting {
  name: CrashPointName;
  /** Which hit crashes, counted from 1. */
  hit: number;
}

function parseCrashPoint(text: string): CrashPointSetting {
  const [name, count] = text.split(":");
  if (!crashPointNames.includes(name as CrashPointName)) {
    throw new Error(`${crashPointVariable}: unknown crash point ${JSON.stringify(name)}; known: ${crashPointNames.join(", ")}`);
  }
  const hit = count === undefined ? 1 : Number(count);
  if (!Number.isInteger(hit) || hit < 1) throw new Error(`${crashPointVariable}: the hit count must be a positive integer, not ${JSON.stringify(count)}`);
  return { name: name as CrashPointName, hit };
}

/** The crash points named by the environment, or undefined when none is (production). */
export function crashPointsFromEnv(env: Record<string, string | undefined>): CrashPoints | undefined {
  const text = env[crashPointVariable];
  if (text === undefined || text === "") return undefined;
  const setting = parseCrashPoint(text);
  let hits = 0;
  return {
    hit(name) {
      if (name !== setting.name || ++hits !== setting.hit) return;
      // Synchronous, so the line is out before the signal lands.
      writeSync(2, `edgetcd: crash point ${name} hit ${hits} time(s); killing the process (${crashPointVariable})\n`);
      process.kill(process.pid, "SIGKILL");
    },
  };
}
