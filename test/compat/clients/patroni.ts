// One Patroni member (Debian's patroni 3.0 over Debian's PostgreSQL) whose
// DCS is etcd's v3 JSON gateway (Patroni's `etcd3`), for
// test/compat/patroni.test.ts: its patroni.yml, its process, its REST API,
// patronictl, and a clean-up that leaves no PostgreSQL behind.
//
// PostgreSQL refuses to run as root (initdb: "cannot be run as root"), so
// under root Patroni runs as the `postgres` user Debian's postgresql-common
// creates, through util-linux's setpriv: it execs Patroni in place, so the
// test's SIGTERM reaches Patroni itself (runuser and su fork and, on SIGTERM,
// kill their child after 2 s, which would cut Patroni's shutdown short). Its
// folder (config, data dir, sockets) is that user's. Not root: Patroni runs as
// the test's own user.
import { spawn, spawnSync, execFile, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, tempDir } from "../../support/processes.ts";

const run = promisify(execFile);

export interface PatroniOptions {
  scope: string;
  name: string;
  /** Where Patroni finds etcd's JSON gateway. */
  etcdPort: number;
  /** Patroni's bootstrap.dcs: its leader lease's TTL, its loop, its retries. */
  ttlSeconds: number;
  loopWaitSeconds: number;
  retryTimeoutSeconds: number;
}

export interface PatroniMember {
  restPort: number;
  postgresPort: number;
  configPath: string;
  /** Patroni's output so far (it logs PostgreSQL's too), for failure messages. */
  output(): string;
  /** Its exit code once it has exited (a signal's name when killed by one), else undefined. */
  exitStatus(): number | string | undefined;
  /** `GET <path>` of Patroni's REST API: status and body, or undefined while nothing answers. */
  rest(path: string): Promise<{ status: number; body: string } | undefined>;
  patronictl(args: string[]): Promise<{ status: number; stdout: string; stderr: string }>;
  /** One value from PostgreSQL, as its superuser: `SHOW <parameter>`. */
  show(parameter: string): Promise<string>;
  /** SIGTERM (Patroni stops PostgreSQL, then gives up its leader key), and its exit code. */
  stop(timeoutMs: number): Promise<number | null>;
  /** Kills what is still running (Patroni, and the PostgreSQL it started in a session of its own). */
  cleanUp(): Promise<void>;
}

const superuserPassword = "patroni-superuser";

/** The newest PostgreSQL Debian installed, e.g. /usr/lib/postgresql/15/bin. */
export function postgresqlBinDir(): string {
  const versions = readdirSync("/usr/lib/postgresql")
    .filter((name) => /^\d+$/.test(name) && existsSync(join("/usr/lib/postgresql", name, "bin/initdb")))
    .sort((a, b) => Number(b) - Number(a));
  if (versions[0] === undefined) throw new Error("no PostgreSQL under /usr/lib/postgresql (Debian package postgresql)");
  return join("/usr/lib/postgresql", versions[0], "bin");
}

/** The uid and gid Patroni runs as: postgres's under root, ours otherwise. */
function patroniUser(): { uid: number; gid: number; prefix: string[] } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
  const [uid, gid] = [id("-u"), id("-g")];
  if (!(uid > 0 && gid > 0)) throw new Error("running as root, but there is no postgres user to run PostgreSQL as (Debian package postgresql creates it)");
  return { uid, gid, prefix: ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--init-groups", "--"] };
}

export async function startPatroni(options: PatroniOptions): Promise<PatroniMember> {
  const [restPort, postgresPort] = [await freePort(), await freePort()];
  const binDir = postgresqlBinDir();
  const user = patroniUser();
  // Beside the test's other temporary folders (test/run.ts's TMPDIR is open to
  // all, as /tmp is), so postgres can reach it.
  const dir = tempDir(`patroni-${options.name}`);
  const dataDir = join(dir, "data");
  // YAML is a superset of JSON: Patroni reads this as its patroni.yml.
  const config = {
    scope: options.scope,
    name: options.name,
    restapi: { listen: `127.0.0.1:${restPort}`, connect_address: `127.0.0.1:${restPort}` },
    // use_proxies: Patroni talks to the address given here only, not to the
    // client URLs the cluster's member list advertises (the test puts a
    // recording proxy here).
    etcd3: { hosts: `127.0.0.1:${options.etcdPort}`, use_proxies: true },
    bootstrap: {
      dcs: { ttl: options.ttlSeconds, loop_wait: options.loopWaitSeconds, retry_timeout: options.retryTimeoutSeconds },
      initdb: [{ encoding: "UTF8" }],
    },
    postgresql: {
      listen: `127.0.0.1:${postgresPort}`,
      connect_address: `127.0.0.1:${postgresPort}`,
      data_dir: dataDir,
      bin_dir: binDir,
      pgpass: join(dir, "pgpass"),
      authentication: {
        superuser: { username: "postgres", password: superuserPassword },
        replication: { username: "replicator", password: "patroni-replicator" },
      },
      // Not Debian's /var/run/postgresql, which a machine without the service running may lack.
      parameters: { unix_socket_directories: dir },
    },
    watchdog: { mode: "off" },
  };
  const configPath = join(dir, "patroni.yml");
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  if (user !== undefined) {
    chownSync(dir, user.uid, user.gid);
    chownSync(configPath, user.uid, user.gid);
  }
  const command = [...(user?.prefix ?? []), "/usr/bin/patroni", configPath];
  const child = spawn(command[0] as string, command.slice(1), {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const postgresEnv = { ...process.env, PGPASSWORD: superuserPassword, PGCONNECT_TIMEOUT: "5" };
  return {
    restPort,
    postgresPort,
    configPath,
    output: () => output,
    exitStatus: () => child.exitCode ?? child.signalCode ?? undefined,
    rest: async (path) => {
      try {
        const response = await fetch(`http://127.0.0.1:${restPort}${path}`, { signal: AbortSignal.timeout(5_000) });
        return { status: response.status, body: await response.text() };
      } catch {
        return undefined; // not listening yet, or gone
      }
    },
    patronictl: async (patronictlArgs) => {
      try {
        const { stdout, stderr } = await run("/usr/bin/patronictl", ["-c", configPath, ...patronictlArgs], { timeout: 30_000, env: { ...process.env, HOME: dir } });
        return { status: 0, stdout, stderr };
      } catch (error) {
        const { code, stdout, stderr } = error as { code?: number; stdout?: string; stderr?: string };
        return { status: typeof code === "number" ? code : -1, stdout: stdout ?? "", stderr: stderr ?? "" };
      }
    },
    show: async (parameter) => {
      const { stdout } = await run(join(binDir, "psql"), ["-h", "127.0.0.1", "-p", String(postgresPort), "-U", "postgres", "-AtXc", `SHOW ${parameter}`], {
        timeout: 10_000,
        env: postgresEnv,
      });
      return stdout.trim();
    },
    stop: async (timeoutMs) => {
      signal(child, "SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timed out">((resolve) => (timer = setTimeout(() => resolve("timed out"), timeoutMs)));
      const code = await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (code === "timed out") throw new Error(`Patroni did not stop within ${timeoutMs} ms of SIGTERM; output:\n${output.slice(-4000)}`);
      return code;
    },
    cleanUp: async () => {
      if (signal(child, "SIGKILL")) await exited;
      await stopPostmaster(dataDir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Signals the child when it still runs; says whether it did. */
function signal(child: ChildProcess, name: NodeJS.Signals): boolean {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return false;
  process.kill(child.pid, name);
  return true;
}

/**
 * Patroni starts PostgreSQL in a session of its own (setsid), so neither its
 * death nor test/run.ts's kill of the test's process group ends it. The
 * postmaster of our data dir gets SIGQUIT (PostgreSQL's immediate shutdown,
 * which takes its backends along) and, if it lingers, SIGKILL. Only a process
 * whose command line names our data dir: a pid from a stale postmaster.pid
 * may be anybody's by now.
 */
async function stopPostmaster(dataDir: string): Promise<void> {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  const ours = () => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(dataDir);
    } catch {
      return false; // gone
    }
  };
  if (!(pid > 0) || !ours()) return;
  process.kill(pid, "SIGQUIT");
  const deadline = Date.now() + 5_000;
  while (ours() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  if (ours()) process.kill(pid, "SIGKILL");
}
