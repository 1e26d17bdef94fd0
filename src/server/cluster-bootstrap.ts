// The members a new cluster starts with, from etcd's flags: each member of
// --initial-cluster gets the id derived from its peer URLs and the cluster
// token (the same rule on every member, so all agree without talking), and the
// cluster id is derived from the member ids.
import { ConfigError, type ServerConfig } from "./config.ts";
import { clusterIdOf, etcdMemberIdOf, memberIdOf } from "./identity.ts";
import type { Digest } from "../ports.ts";

export interface InitialMember {
  id: number;
  name: string;
  peerUrls: string[];
}

export interface InitialCluster {
  clusterId: bigint;
  members: InitialMember[];
  /** This member. */
  self: InitialMember;
}

export async function initialClusterOf(config: ServerConfig, digest: Digest): Promise<InitialCluster> {
  const members: InitialMember[] = [];
  for (const [name, peerUrls] of config.initialCluster) {
    members.push({ id: await memberIdOf(peerUrls, config.initialClusterToken, digest), name, peerUrls });
  }
  const self = members.find((member) => member.name === config.name);
  if (self === undefined) {
    throw new ConfigError(`couldn't find local name "${config.name}" in the initial cluster configuration`);
  }
  const advertised = [...config.initialAdvertisePeerUrls].sort().join(",");
  if ([...self.peerUrls].sort().join(",") !== advertised) {
    throw new ConfigError(
      `--initial-cluster has ${self.name}=${self.peerUrls.join(",")} but missing from --initial-advertise-peer-urls=${config.initialAdvertisePeerUrls.join(",")}`,
    );
  }
  const ids = new Set(members.map((member) => member.id));
  if (ids.size !== members.length) throw new ConfigError("--initial-cluster has duplicate peer URLs");
  const etcdIds = await Promise.all(members.map((member) => etcdMemberIdOf(member.peerUrls, config.initialClusterToken, digest)));
  return { clusterId: await clusterIdOf(etcdIds, digest), members, self };
}
