/**
 * Authentication and authorization hooks. The broker asks them; node.ts builds the configured
 * one (src/auth/chain.ts: password file, ACL file, JWT, HTTP hook; dynamic security, alone or
 * before that chain: src/auth/dynsec/chained.ts).
 * `allowAll` is for tests that pass it as `extras.authorizer`.
 */
export interface ClientIdentity {
  clientId: string;
  username?: string;
  remoteAddress: string;
  protocolVersion: 3 | 4 | 5;
}

export interface ConnectCredentials extends ClientIdentity {
  password?: Buffer;
  /** The user name comes from a verified TLS client certificate (`useIdentityAsUsername` /
   *  `useSubjectAsUsername`): like Mosquitto, no password is checked then (ACLs still apply). */
  certificateUsername?: boolean;
}

/** Outcome of an authentication step: a CONNACK reason code (0 = success). */
export interface AuthResult {
  reasonCode: number;
  reasonString?: string;
}

/**
 * Enhanced authentication (MQTT 5.0 section 4.12): one instance per method name. `step` is called
 * with the Authentication Data of CONNECT and of each AUTH packet that continues the exchange.
 */
export interface EnhancedAuthMethod {
  readonly method: string;
  start(client: ClientIdentity): EnhancedAuthSession;
}
export interface EnhancedAuthSession {
  step(data: Buffer | undefined): Promise<
    | { kind: 'continue'; data?: Buffer }
    | { kind: 'success'; data?: Buffer; username?: string }
    | { kind: 'failure'; reasonCode: number; reasonString?: string }
  >;
}

export interface Authorizer {
  authenticate(creds: ConnectCredentials): Promise<AuthResult> | AuthResult;
  /** May this client publish to this topic name? */
  authorizePublish(client: ClientIdentity, topic: string): boolean;
  /** May this client subscribe to this topic filter? */
  authorizeSubscribe(client: ClientIdentity, filter: string): boolean;
  /** May this message be delivered to this client (checked per subscriber)? */
  authorizeDelivery(client: ClientIdentity, topic: string): boolean;
}

export const allowAll: Authorizer = {
  authenticate: () => ({ reasonCode: 0 }),
  authorizePublish: () => true,
  authorizeSubscribe: () => true,
  authorizeDelivery: () => true,
};
