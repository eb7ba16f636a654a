/** What the broker needs to know from the configuration, in normalized units. */
export interface BrokerOptions {
  nodeId: string;
  maxQos: 0 | 1 | 2;
  retainAvailable: boolean;
  wildcardSubscriptionAvailable: boolean;
  subscriptionIdentifiersAvailable: boolean;
  sharedSubscriptionAvailable: boolean;
  queueQos0Messages: boolean;
  allowZeroLengthClientId: boolean;
  autoIdPrefix: string;
  /** Bytes, whole packet. */
  maxPacketSize: number;
  maxTopicLength: number;
  maxTopicLevels: number;
  /** Outbound QoS 1/2 window per client. */
  maxInflight: number;
  /** Inbound window announced in CONNACK. */
  receiveMaximum: number;
  maxQueuedMessages: number;
  maxQueuedBytes: number;
  maxConnections: number;
  connectTimeoutMs: number;
  /** Seconds. */
  maxKeepAlive: number;
  /** Seconds; 0xFFFFFFFF = no cap. */
  maxSessionExpiry: number;
  topicAliasMaximum: number;
  maxSubscriptionsPerClient: number;
  /** Seconds after which a disconnected 3.1.1 persistent session expires; 0 = never. */
  persistentClientExpiration: number;
  /** $SYS publish interval; 0 disables. */
  sysIntervalMs: number;
  /** Bytes of unsent output per connection above which QoS 0 messages are dropped. */
  maxOutputBufferBytes: number;
}

export const defaultBrokerOptions: BrokerOptions = {
  nodeId: 'skein',
  maxQos: 2,
  retainAvailable: true,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
  queueQos0Messages: false,
  allowZeroLengthClientId: true,
  autoIdPrefix: 'auto-',
  maxPacketSize: 1024 * 1024,
  maxTopicLength: 65535,
  maxTopicLevels: 128,
  maxInflight: 1000,
  receiveMaximum: 100,
  maxQueuedMessages: 1000,
  maxQueuedBytes: 16 * 1024 * 1024,
  maxConnections: 100000,
  connectTimeoutMs: 10000,
  maxKeepAlive: 65535,
  maxSessionExpiry: 0xffffffff,
  topicAliasMaximum: 10,
  maxSubscriptionsPerClient: 1000,
  persistentClientExpiration: 0,
  sysIntervalMs: 10000,
  maxOutputBufferBytes: 1024 * 1024,
};
