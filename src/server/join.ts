// Joining a running cluster (--initial-cluster-state existing), as etcd does:
// the new member asks the other members of --initial-cluster for the cluster's
// member list on their peer port (`GET /members`, the cluster id in a header),
// finds itself in it by its advertised peer URLs (a `member add` put it
// there), and starts with that membership and an empty log; the leader then
// sends it the log, or a snapshot when the log was compacted.
import type { PeerRoute } from "../peer/routes.ts";
import type { PeerFetch } from "../ports.ts";
import { ConfigError, type ServerConfig } from "./config.ts";
import type { MemberIdentity } from "./identity.ts";
import type { MemberRecord } from "./members.ts";

export const membersPath = "/members";
export const clusterIdHeader = "x-etcd-cluster-id";

/** What `GET /members` answers: etcd's member JSON. */
interface MemberJson {
  id: number;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner?: boolean;
}

export interface MembersRouteHost {
  readonly clusterIdHex: string;
  membersForPeers(): MemberRecord[];
}

/** `GET /members` on the peer port (src/peer/routes.ts): the member list a joining or vouching member asks for. */
export function membersRoute(host: () => MembersRouteHost | undefined): PeerRoute {
  return {
    name: "GET /members",
    matches: (request) => request.path === membersPath && request.method === "GET",
    handle(request) {
      const serving = host();
      if (serving === undefined) {
        request.respond(503, { "content-type": "text/plain" });
        return request.end(new TextEncoder().encode("not ready\n"));
      }
      const body: MemberJson[] = serving.membersForPeers().map((member) => ({
        id: member.id,
        name: member.name,
        peerURLs: member.peerUrls,
        clientURLs: member.clientUrls,
        ...(member.isLearner ? { isLearner: true } : {}),
      }));
      request.respond(200, { "content-type": "application/json", [clusterIdHeader]: serving.clusterIdHex });
      request.end(new TextEncoder().encode(JSON.stringify(body)));
    },
  };
}

const sameUrls = (a: readonly string[], b: readonly string[]) => [...a].sort().join(",") === [...b].sort().join(",");

/**
 * The identity of a member joining a running cluster. Asks each other member
 * of --initial-cluster in turn, for up to `timeoutMs`, and fails with etcd's
 * message when none answers. A member that answers without us may not have
 * applied our `member add` yet (the add is applied first by the member that
 * took it): the others are asked too, and the list is asked again for
 * `notListedGraceMs` before the join fails as not added.
 */
export async function joinIdentity(
  config: ServerConfig,
  options: { timeoutMs: number; notListedGraceMs?: number; fetch: PeerFetch; sleep: (ms: number) => Promise<void>; nowMs: () => number },
): Promise<MemberIdentity> {
  const fetchFn = options.fetch;
  const remotes = [...config.initialCluster.entries()]
    .filter(([name]) => name !== config.name)
    .flatMap(([, urls]) => urls);
  if (remotes.length === 0) throw new ConfigError("cannot fetch cluster info from peer urls: no peer urls given");
  const deadline = options.nowMs() + options.timeoutMs;
  let firstNotListedMs: number | undefined;
  for (;;) {
    for (const url of remotes) {
      const answer = await fetchMembers(fetchFn, url);
      if (answer === undefined) continue;
      const self = answer.members.find((member) => sameUrls(member.peerURLs, config.initialAdvertisePeerUrls));
      if (self === undefined) {
        firstNotListedMs ??= options.nowMs();
        continue;
      }
      return {
        name: config.name,
        memberId: self.id,
        clusterId: answer.clusterId,
        peerUrls: self.peerURLs,
        initialMembers: answer.members.map((member) => ({
          id: member.id,
          name: member.id === self.id ? config.name : member.name,
          peerUrls: member.peerURLs,
          ...(member.isLearner === true ? { isLearner: true } : {}),
        })),
      };
    }
    const now = options.nowMs();
    if (firstNotListedMs !== undefined && (now - firstNotListedMs >= (options.notListedGraceMs ?? 3000) || now >= deadline)) {
      throw new ConfigError(
        `member with peer URLs ${config.initialAdvertisePeerUrls.join(",")} is not in the cluster's member list; add it first with 'etcdctl member add'`,
      );
    }
    if (now >= deadline) {
      throw new ConfigError("cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs");
    }
    await options.sleep(500);
  }
}

/** How long one member may take to answer a vouching lookup. */
const vouchingLookupTimeoutMs = 1000;

/**
 * Whether a member this member knows lists `id` as a current member: asks each
 * of `knownPeerUrls` in turn (GET /members) and returns the peer URLs of `id`
 * from the first answer of this cluster that lists it. A member as far behind
 * as we are may not list it yet, so one that does not is not the last word.
 * (src/peer/vouching.ts: admitting senders this member has not applied yet.)
 */
export async function peerUrlsListedBy(
  knownPeerUrls: readonly string[],
  clusterId: bigint,
  id: number,
  fetchFn: PeerFetch,
): Promise<string[] | undefined> {
  for (const url of knownPeerUrls) {
    const answer = await fetchMembers(fetchFn, url, vouchingLookupTimeoutMs);
    if (answer === undefined || answer.clusterId !== clusterId || !Array.isArray(answer.members)) continue;
    const listed = answer.members.find((member) => member.id === id);
    if (listed !== undefined && Array.isArray(listed.peerURLs) && listed.peerURLs.length > 0) return listed.peerURLs.map(String);
  }
  return undefined;
}

/** One member's `GET /members` answer, or undefined when it is down, not ready or not a member. */
async function fetchMembers(
  fetchFn: PeerFetch,
  url: string,
  timeoutMs = 2000,
): Promise<{ members: MemberJson[]; clusterId: bigint } | undefined> {
  try {
    const response = await fetchFn(new URL(membersPath, url), { signal: AbortSignal.timeout(timeoutMs) });
    const clusterIdHex = response.headers.get(clusterIdHeader);
    if (!response.ok || clusterIdHex === null || !/^[0-9a-f]{1,16}$/i.test(clusterIdHex)) return undefined;
    return { members: (await response.json()) as MemberJson[], clusterId: BigInt(`0x${clusterIdHex}`) };
  } catch {
    return undefined; // that member is down or not ready; the next is asked
  }
}
