// Client TLS settings from etcd's flags (--cert-file, --key-file,
// --trusted-ca-file, --client-cert-auth, --client-crl-file, --auto-tls,
// --cipher-suites, --client-cert-allowed-hostname), checked at start as etcd
// 3.4 checks them (embed/etcd.go configureClientListeners, pkg/transport).
// Pure data: the runtime reads the files and builds the TLS listener.

export interface ClientTlsSettings {
  /** PEM files; undefined with --auto-tls (the runtime generates a self-signed pair in memory). */
  certFile: string | undefined;
  keyFile: string | undefined;
  trustedCaFile: string | undefined;
  /**
   * A client must present a certificate signed by --trusted-ca-file. etcd 3.4
   * demands one whenever --trusted-ca-file is set, with or without
   * --client-cert-auth (pkg/transport TLSInfo.ServerConfig); so do we.
   */
  requireClientCertificate: boolean;
  crlFile: string | undefined;
  /** OpenSSL names of the TLS 1.2 suites allowed; empty means the runtime's defaults. */
  cipherSuites: string[];
  /** A client certificate must be valid for this hostname (SAN, or CN without SANs). */
  allowedHostname: string | undefined;
  /** Host names and addresses a generated certificate covers (the https listen URLs' hosts). */
  autoTlsHosts: string[] | undefined;
}

export class ClientTlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClientTlsError";
  }
}

/**
 * Go's cipher suite names (crypto/tls, as etcd 3.4's --cipher-suites takes
 * them) and OpenSSL's for the same suite. Go's RC4 and 3DES suites are left
 * out on purpose: OpenSSL 3 (Node, Bun) no longer offers them, so naming one
 * is refused at start rather than silently dropped.
 */
export const goCipherSuiteToOpenSsl: ReadonlyMap<string, string> = new Map([
  ["TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"],
  ["TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"],
  ["TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"],
  ["TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"],
  ["TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"],
  ["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"],
  ["TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"],
  ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"],
  ["TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"],
  ["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"],
  ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"],
  ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"],
  ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"],
  ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"],
  ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"],
  // etcd accepts both Go's old and new names for the ChaCha20 suites.
  ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"],
  ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"],
  ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"],
  ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"],
]);

export interface ClientTlsFlags {
  listenUrls: readonly URL[];
  get(name: string): string;
  /** Told of etcd's start-up warnings (an http URL while certificates are given). */
  warn(message: string): void;
}

/**
 * The TLS settings for the client listeners, or undefined when no client
 * listener is https. Throws ClientTlsError with etcd's message when the flags
 * cannot work together.
 */
export function clientTlsFromFlags(flags: ClientTlsFlags): ClientTlsSettings | undefined {
  const file = (name: string) => flags.get(name) || undefined;
  const certFile = file("cert-file");
  const keyFile = file("key-file");
  const trustedCaFile = file("trusted-ca-file");
  const clientCertAuth = flags.get("client-cert-auth") === "true";
  const autoTls = flags.get("auto-tls") === "true";
  const cipherSuites = cipherSuitesFromFlag(flags.get("cipher-suites"));
  // etcd's TLSInfo.Empty(): no certificate and no key.
  const givenCertificate = certFile !== undefined || keyFile !== undefined;
  if (givenCertificate && (certFile === undefined || keyFile === undefined)) {
    throw new ClientTlsError(`KeyFile and CertFile must both be present[key: ${keyFile ?? ""}, cert: ${certFile ?? ""}]`);
  }
  if (autoTls && givenCertificate) flags.warn("ignoring client auto TLS since certs given");
  for (const url of flags.listenUrls) {
    if (url.protocol !== "http:") continue;
    if (givenCertificate) flags.warn(`scheme is HTTP while key and cert files are present; ignoring key and cert files (client-url ${url.href})`);
    if (clientCertAuth) flags.warn(`scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL (client-url ${url.href})`);
  }
  const httpsUrls = flags.listenUrls.filter((url) => url.protocol === "https:");
  for (const url of httpsUrls) {
    if (!givenCertificate && !autoTls) {
      throw new ClientTlsError(`TLS key/cert (--cert-file, --key-file) must be provided for client url ${url.href} with HTTPS scheme`);
    }
  }
  refuseSharedHttpAndHttpsAddress(flags.listenUrls);
  if (httpsUrls.length === 0) return undefined;
  return {
    certFile,
    keyFile,
    trustedCaFile,
    requireClientCertificate: clientCertAuth || trustedCaFile !== undefined,
    crlFile: file("client-crl-file"),
    cipherSuites,
    allowedHostname: file("client-cert-allowed-hostname"),
    autoTlsHosts: givenCertificate ? undefined : httpsUrls.map((url) => url.hostname.replace(/^\[|\]$/g, "")),
  };
}

function cipherSuitesFromFlag(text: string): string[] {
  if (text === "") return [];
  return text.split(",").map((name) => {
    const openSslName = goCipherSuiteToOpenSsl.get(name.trim());
    if (openSslName === undefined) throw new ClientTlsError(`unexpected TLS cipher suite "${name}"`);
    return openSslName;
  });
}

/**
 * etcd serves http and https on one address by looking at the first byte of
 * each connection (cmux). edgetcd's TLS listener is a TLS server from the first
 * byte, so one address for both is refused rather than half served.
 */
function refuseSharedHttpAndHttpsAddress(urls: readonly URL[]): void {
  const schemesByAddress = new Map<string, Set<string>>();
  for (const url of urls) {
    const schemes = schemesByAddress.get(url.host) ?? new Set<string>();
    schemes.add(url.protocol);
    schemesByAddress.set(url.host, schemes);
    if (schemes.size > 1) {
      throw new ClientTlsError(`http and https on the same address ${url.host} are not served yet; give each its own port`);
    }
  }
}
