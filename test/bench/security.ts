// npm run bench -- --security [--rounds R --total N --targets etcd,edgetcd-node]
// Put and range throughput with client TLS, with auth, and with both, against
// etcd 3.4 with the same settings in the same run, measured by etcd's own Go
// client: ../shared/loadgen with loadgen-secure.patch (its -cacert, -cert,
// -key and -user flags: clientv3's TLS and Username/Password; test/bench/loadgen.ts
// builds it on first use).
// Rounds interleave targets and modes so noise hits all alike; prints medians
// and each target's ratio to etcd per mode.
import { argument, median, runLoadgen, runtimeOfTarget, secureLoadgen } from "./loadgen.ts";
import { freePort, startEdgetcd, startEtcd, etcdctlAsync, type RunningServer, type StartOptions } from "../support/processes.ts";

const fixtures = "/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures";
const tls = { cert: `${fixtures}/server.crt`, key: `${fixtures}/server.key.insecure`, ca: `${fixtures}/ca.crt` };

type Mode = "plain" | "tls" | "auth" | "tls+auth";
const modes: Mode[] = ["plain", "tls", "auth", "tls+auth"];
const operations = ["put", "range"] as const;

async function startTarget(target: string, mode: Mode): Promise<RunningServer> {
  const options: StartOptions = { extraArgs: ["--bcrypt-cost", "4"] };
  if (mode === "tls" || mode === "tls+auth") {
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    options.clientPort = port;
    options.extraArgs = [...(options.extraArgs ?? []), "--listen-client-urls", url, "--advertise-client-urls", url, "--cert-file", tls.cert, "--key-file", tls.key, "--trusted-ca-file", tls.ca];
  }
  const server = target === "etcd" ? await startEtcd(options) : await startEdgetcd({ ...options, runtime: runtimeOfTarget(target) });
  if (mode === "auth" || mode === "tls+auth") {
    const tlsArgs = mode === "tls+auth" ? ["--cacert", tls.ca, "--cert", tls.cert, "--key", tls.key] : [];
    const setup = [
      ["user", "add", "root:rootpw"],
      ["user", "grant-role", "root", "root"],
      ["role", "add", "bench"],
      ["role", "grant-permission", "bench", "readwrite", "/bench/", "--prefix"],
      ["user", "add", "bench:benchpw"],
      ["user", "grant-role", "bench", "bench"],
      ["auth", "enable"],
    ];
    for (const args of setup) {
      const result = await etcdctlAsync(server.endpoint, [...tlsArgs, ...args]);
      if (result.status !== 0) throw new Error(`${target} ${mode}: etcdctl ${args.join(" ")}: ${result.stderr}`);
    }
  }
  return server;
}

async function load(loadgen: string, server: RunningServer, mode: Mode, op: string, total: number): Promise<number> {
  const args = ["-endpoints", server.endpoint, "-op", op, "-clients", "100", "-conns", "10", "-total", String(total), "-keys", "1000"];
  if (mode === "tls" || mode === "tls+auth") args.push("-cacert", tls.ca, "-cert", tls.cert, "-key", tls.key);
  // Not root: an application's user, whose permissions are checked on every request.
  if (mode === "auth" || mode === "tls+auth") args.push("-user", "bench:benchpw");
  const result = await runLoadgen(loadgen, args);
  if (result.errors > 0) throw new Error(`${server.kind} ${mode} ${op}: ${result.errors} errors`);
  return result.qps;
}

export async function runSecurityBench(): Promise<void> {
  const loadgen = process.argv.includes("--loadgen") ? argument("loadgen", "") : await secureLoadgen();
  const rounds = Number(argument("rounds", "3"));
  const total = Number(argument("total", "10000"));
  const targets = argument("targets", "etcd,edgetcd-node").split(",");
  const results = new Map<string, number[]>();
  for (let round = 1; round <= rounds; round++) {
    for (const mode of modes) {
      for (const target of targets) {
        const server = await startTarget(target, mode);
        try {
          for (const op of operations) {
            const qps = await load(loadgen, server, mode, op, total);
            const key = `${mode}|${op}|${target}`;
            results.set(key, [...(results.get(key) ?? []), qps]);
            console.error(`round ${round} ${mode} ${op} ${target}: ${qps.toFixed(0)} ops/s`);
          }
        } finally {
          await server.stop();
        }
      }
    }
  }
  console.log(`\nmedian ops/s over ${rounds} rounds (loadgen: 100 clients, 10 connections, ${total} requests, 1000 keys, 256-byte values)`);
  console.log(["mode", "op", ...targets, ...targets.filter((t) => t !== "etcd").map((t) => `${t}/etcd`)].join("\t"));
  for (const mode of modes) {
    for (const op of operations) {
      const medians = targets.map((target) => median(results.get(`${mode}|${op}|${target}`) ?? [0]));
      const etcd = medians[targets.indexOf("etcd")] ?? 0;
      const ratios = targets.flatMap((target, index) => (target === "etcd" ? [] : [(medians[index] as number) / etcd]));
      console.log([mode, op, ...medians.map((m) => m.toFixed(0)), ...ratios.map((r) => r.toFixed(2))].join("\t"));
    }
  }
}
