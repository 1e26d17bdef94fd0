// What the tests need beside node_modules, and how test/run.ts gets it on a
// fresh Debian machine: the real etcd 3.4 and etcdctl (compatibility tests run
// them side by side with edgetcd), Chromium (browser tests), etcd 3.4's Go
// sources (the schema is compared with etcd's compiled descriptors),
// util-linux's unshare (PID namespace tests), and the client matrix's other
// real etcd clients: python-etcd3 and etcd3gw, and Go to build etcd 3.4's
// clientv3 from those sources; and Patroni with PostgreSQL, a real
// application keeping its leader in etcd. Missing ones are installed from
// Debian's packages when we are root and apt-get is there; otherwise the run
// stops, naming what to install.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export interface Prerequisite {
  /** What a test needs, as a person would say it. */
  description: string;
  /** The file whose presence shows it is installed. */
  path: string;
  /** The Debian package that installs it. */
  debianPackage: string;
}

export const prerequisites: readonly Prerequisite[] = [
  { description: "etcd 3.4", path: "/usr/bin/etcd", debianPackage: "etcd-server" },
  { description: "etcdctl 3.4", path: "/usr/bin/etcdctl", debianPackage: "etcd-client" },
  { description: "Chromium", path: "/usr/bin/chromium", debianPackage: "chromium" },
  {
    description: "etcd 3.4's Go sources",
    path: "/usr/share/gocode/src/go.etcd.io/etcd/etcdserver/etcdserverpb/rpc.pb.go",
    debianPackage: "golang-etcd-server-dev",
  },
  { description: "unshare (util-linux)", path: "/usr/bin/unshare", debianPackage: "util-linux" },
  { description: "python-etcd3 (grpcio)", path: "/usr/lib/python3/dist-packages/etcd3/client.py", debianPackage: "python3-etcd3" },
  { description: "etcd3gw (etcd's JSON gateway)", path: "/usr/lib/python3/dist-packages/etcd3gw/client.py", debianPackage: "python3-etcd3gw" },
  { description: "Go", path: "/usr/bin/go", debianPackage: "golang-go" },
  { description: "Patroni", path: "/usr/bin/patroni", debianPackage: "patroni" },
  // Debian 12's PostgreSQL (beside its etcd 3.4); its postgresql-common makes the postgres user Patroni runs it as.
  { description: "PostgreSQL 15", path: "/usr/lib/postgresql/15/bin/initdb", debianPackage: "postgresql" },
];

/** The packages whose services start on install and would hold a port the tests may use (etcd: 2379). */
const servicesStartedByInstall = ["etcd"];

export type Plan =
  | { kind: "ready" }
  | { kind: "install"; missing: Prerequisite[]; commands: string[][] }
  | { kind: "fail"; message: string };

export interface Machine {
  isRoot: boolean;
  hasAptGet: boolean;
}

/** Pure: what to do about the prerequisites that are missing on this machine. */
export function planPrerequisites(missing: readonly Prerequisite[], machine: Machine): Plan {
  if (missing.length === 0) return { kind: "ready" };
  const packages = [...new Set(missing.map((prerequisite) => prerequisite.debianPackage))];
  if (machine.isRoot && machine.hasAptGet) {
    return { kind: "install", missing: [...missing], commands: [["apt-get", "update"], ["apt-get", "install", "-y", ...packages]] };
  }
  const lines = missing.map((prerequisite) => `  ${prerequisite.description}: ${prerequisite.path} (Debian package ${prerequisite.debianPackage})`);
  const how = machine.hasAptGet
    ? `As root, test/run.ts installs them itself; or run: sudo apt-get install -y ${packages.join(" ")}`
    : `Install them with this system's package manager (Debian: apt-get install -y ${packages.join(" ")}).`;
  return { kind: "fail", message: `The tests need what this machine lacks:\n${lines.join("\n")}\n${how}` };
}

/**
 * The prerequisites absent under `root` ("/" normally; a test of this logic
 * points it at an empty folder), and, when etcd is there, whether it is 3.4.
 */
export function missingPrerequisites(root: string): Prerequisite[] {
  return prerequisites.filter((prerequisite) => !existsSync(join(root, prerequisite.path)));
}

/** etcd's version line when it is not 3.4 (apt-get would not change it, so the run stops), else undefined. */
export function wrongEtcdVersion(root: string): string | undefined {
  const etcd = join(root, "/usr/bin/etcd");
  if (!existsSync(etcd)) return undefined;
  const result = spawnSync(etcd, ["--version"], { encoding: "utf8", timeout: 10_000 });
  const line = /^etcd Version: (\S+)/m.exec(result.stdout ?? "");
  if (line !== null && line[1]?.startsWith("3.4.")) return undefined;
  return line?.[0] ?? `${etcd} --version printed no version`;
}

function hasCommand(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

/**
 * Checks, and installs what is missing when it can. Returns false when the
 * tests cannot run. With dryRun, prints the plan and changes nothing.
 */
export function ensurePrerequisites(options: { root: string; dryRun: boolean; log: (line: string) => void }): boolean {
  const { root, dryRun, log } = options;
  const wrongVersion = wrongEtcdVersion(root);
  if (wrongVersion !== undefined) {
    log(`The tests compare edgetcd with etcd 3.4, but ${join(root, "/usr/bin/etcd")} is ${wrongVersion}; install etcd 3.4 (Debian 12's etcd-server) there.`);
    return false;
  }
  const missing = missingPrerequisites(root);
  const plan = planPrerequisites(missing, { isRoot: process.getuid?.() === 0, hasAptGet: hasCommand("apt-get") });
  if (plan.kind === "ready") {
    if (dryRun) log("prerequisites: all present");
    return true;
  }
  if (plan.kind === "fail") {
    log(plan.message);
    return false;
  }
  log(`The tests need ${plan.missing.map((prerequisite) => prerequisite.description).join(", ")}: installing from Debian's packages.`);
  const stops = servicesStartedByInstall.map((service) => ["sh", "-c", stopServiceScript(service)]);
  for (const command of [...plan.commands, ...stops]) {
    log(`${dryRun ? "would run" : "running"}: ${command.join(" ")}`);
    if (dryRun) continue;
    const result = spawnSync(command[0] as string, command.slice(1), {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    if (result.status !== 0 && command[0] === "apt-get") {
      log(`${command.join(" ")} failed (exit ${result.status}); install by hand: ${plan.missing.map((prerequisite) => prerequisite.debianPackage).join(" ")}`);
      return false;
    }
  }
  if (dryRun) return true;
  const stillMissing = missingPrerequisites(root);
  if (stillMissing.length > 0) {
    log(`Still missing after apt-get install: ${stillMissing.map((prerequisite) => prerequisite.path).join(", ")}`);
    return false;
  }
  return true;
}

/**
 * The tests start their own etcd on free ports; the packaged service, started
 * by the package's install script where a service manager runs, must not hold
 * 2379. Stopped through systemd or its init script, never by process name.
 */
function stopServiceScript(service: string): string {
  return `if [ -d /run/systemd/system ]; then systemctl stop ${service}; elif [ -x /etc/init.d/${service} ]; then /etc/init.d/${service} stop; fi; true`;
}
