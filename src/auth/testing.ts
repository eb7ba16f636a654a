/** Test helpers of src/auth: a node with an `auth` config on 127.0.0.1, free ports, temp files. */
import { defaultConfig, type AuthConfig, type ListenerConfig, type SkeinConfig } from '../config/schema.js';
import { createLogger } from '../log.js';
import { startNode, type SkeinNode } from '../node.js';

export interface AuthOverrides {
  allowAnonymous?: boolean;
  passwordFile?: string;
  aclFile?: string;
  http?: Partial<AuthConfig['http']>;
  jwt?: Partial<AuthConfig['jwt']>;
}

/** Starts a node on 127.0.0.1:0 (memory store) with these auth settings. */
export async function startAuthNode(auth: AuthOverrides, listener: Partial<ListenerConfig> = {}): Promise<{ node: SkeinNode; port: number; url: string }> {
  const c: SkeinConfig = defaultConfig();
  c.nodeId = 'auth-test';
  c.listeners = [{ ...c.listeners[0]!, port: 0, host: '127.0.0.1', protocol: 'mqtt', ...listener }];
  c.store.type = 'memory';
  c.sys.intervalMs = 0;
  c.logLevel = (process.env.SKEIN_TEST_LOG as SkeinConfig['logLevel']) ?? 'silent';
  c.auth = {
    ...c.auth,
    ...auth,
    http: { ...c.auth.http, ...auth.http },
    jwt: { ...c.auth.jwt, ...auth.jwt },
  };
  const node = await startNode(c, { logger: createLogger(c.logLevel) });
  const port = node.addresses[0]!.port;
  return { node, port, url: `mqtt://127.0.0.1:${port}` };
}

export { freePort } from '../testing/ports.js';
