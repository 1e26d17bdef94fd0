// npm run cluster [-- --runtime bun --base-port 2379]: a 3-member edgetcd
// cluster on loopback, like etcd's goreman Procfile: infra1..3 with client
// ports 2379, 22379, 32379 and peer ports 2380, 22380, 32380. Ctrl-C stops all.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";

const argument = (name: string, fallback: string) => {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
};

const repoRoot = new URL("../..", import.meta.url).pathname;
const runtime = argument("runtime", "node");
const members = [
  { name: "infra1", client: 2379, peer: 2380 },
  { name: "infra2", client: 22379, peer: 22380 },
  { name: "infra3", client: 32379, peer: 32380 },
];
const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(",");
const children: ChildProcess[] = [];

for (const member of members) {
  const child = spawn(
    join(repoRoot, "bin/edgetcd"),
    [
      "--name", member.name,
      "--data-dir", `${member.name}.edgetcd`,
      "--listen-client-urls", `http://127.0.0.1:${member.client}`,
      "--advertise-client-urls", `http://127.0.0.1:${member.client}`,
      "--listen-peer-urls", `http://127.0.0.1:${member.peer}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${member.peer}`,
      "--initial-cluster-token", "edgetcd-cluster-1",
      "--initial-cluster", initialCluster,
      "--initial-cluster-state", "new",
    ],
    { env: { ...process.env, EDGETCD_RUNTIME: runtime }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const prefix = `${member.name} | `;
  const relay = (chunk: Buffer) => process.stdout.write(chunk.toString().replace(/^(?=.)/gm, prefix));
  child.stdout?.on("data", relay);
  child.stderr?.on("data", relay);
  child.on("exit", (code, signal) => console.log(`${prefix}exited (${signal ?? code})`));
  children.push(child);
}

console.log(`endpoints: ${members.map((m) => `127.0.0.1:${m.client}`).join(",")}`);
const stop = () => {
  for (const child of children) child.kill("SIGTERM");
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
