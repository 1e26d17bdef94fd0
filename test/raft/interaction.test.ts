// Runs every transcript in test/raft/testdata and compares the core's output
// with the expected output committed beneath each command. EDGETCD_REWRITE=1
// rewrites the files (then review every change by hand before committing).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runScript } from "./interaction.ts";

const dir = new URL("./testdata", import.meta.url).pathname;
const rewrite = process.env.EDGETCD_REWRITE === "1";

/** The commands of a transcript, without the expected outputs. */
function commandsOf(transcript: string): string {
  return transcript
    .split(/\n\n+/)
    .map((block) => block.split("\n----\n")[0] as string)
    .join("\n\n");
}

describe("raft transcripts", () => {
  for (const name of readdirSync(dir).filter((file) => file.endsWith(".txt")).sort()) {
    test(name, () => {
      const path = join(dir, name);
      const expected = readFileSync(path, "utf8");
      const actual = runScript(commandsOf(expected));
      if (rewrite) writeFileSync(path, actual);
      else assert.equal(actual, expected);
    });
  }
});
