// What `edgetcd --help` and `edgetcd --version` print. The help is laid out
// like etcd's (commands, then flags by group, each with its default and one
// line saying what it does) and says which flags edgetcd refuses or ignores.
import { flagDefinitions, flagGroups, type FlagDefinition } from "./flag-table.ts";

/** Facts about this build, answered by the composition root (runtime/node/build-info.ts). */
export interface BuildInfo {
  /** edgetcd's own version (package.json). */
  version: string;
  /** The git commit built from, or "unknown". */
  gitCommit: string;
  /** e.g. "node v22.3.0" or "bun 1.4.5". */
  runtime: string;
}

export function versionText(build: BuildInfo, api: { serverVersion: string; clusterVersion: string }): string {
  return [
    `edgetcd Version: ${build.version}`,
    // What Status reports as its version; clients (Kubernetes among them) gate features on it.
    `etcd API Version: ${api.serverVersion} (cluster version ${api.clusterVersion})`,
    `Git SHA: ${build.gitCommit}`,
    `Runtime: ${build.runtime}`,
    "",
  ].join("\n");
}

export function usageText(): string {
  const sections = flagGroups
    .map((group) => {
      const rows = flagDefinitions.filter((definition) => definition.group === group && definition.hidden !== true);
      return rows.length === 0 ? "" : `${group}:\n${rows.map(flagHelp).join("\n")}\n`;
    })
    .filter((section) => section !== "");
  return `Usage:

  edgetcd [flags]
    Start an edgetcd member (etcd's v3 API, etcd's flags and ETCD_* variables).

  edgetcd --version
    Print edgetcd's version, the etcd API version it serves, the commit and the runtime.

  edgetcd -h | --help
    Print this help.

Every flag can also be set as ETCD_<FLAG> in the environment (dashes as
underscores); a flag on the command line wins. Flags marked [refused] stop the
start when set to anything but their default; flags marked [ignored] are
accepted with a warning and have no effect.

${sections.join("\n")}`;
}

function flagHelp(definition: FlagDefinition): string {
  const shown = definition.defaultShown ?? definition.defaultValue;
  // Numbers print bare, everything else quoted, as etcd prints them.
  const value = definition.kind === "int" || definition.kind === "uint" ? shown : `'${shown}'`;
  const lines = [`  --${definition.name} ${value}`, `    ${definition.description}`];
  const { status } = definition;
  if (status.kind === "refused") lines.push(`    [refused] ${status.reason}.`);
  if (status.kind === "warned") lines.push(`    [ignored] ${status.reason}.`);
  return lines.join("\n");
}
