/**
 * MQTT reason codes (MQTT 5.0 section 2.4) and the 3.1.1 CONNACK return codes (section 3.2.2.3),
 * named in the spec's words.
 */
export const RC = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  GrantedQoS0: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWillMessage: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** MQTT 3.1.1 CONNACK return codes [MQTT-3.2.2-4..6]. */
export const V3_CONNACK = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUserNameOrPassword: 4,
  NotAuthorized: 5,
} as const;

/** Maps a v5 CONNACK reason code to the nearest 3.1.1 return code. */
export function v3ConnackCode(v5: number): number {
  switch (v5) {
    case RC.Success:
      return V3_CONNACK.Accepted;
    case RC.UnsupportedProtocolVersion:
      return V3_CONNACK.UnacceptableProtocolVersion;
    case RC.ClientIdentifierNotValid:
      return V3_CONNACK.IdentifierRejected;
    case RC.BadUserNameOrPassword:
    case RC.BadAuthenticationMethod:
      return V3_CONNACK.BadUserNameOrPassword;
    case RC.NotAuthorized:
    case RC.Banned:
      return V3_CONNACK.NotAuthorized;
    default:
      return V3_CONNACK.ServerUnavailable;
  }
}

/** A protocol outcome carried as a value: the reason code and an optional reason string. */
export class ProtocolViolation extends Error {
  constructor(readonly reasonCode: number, message: string) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}
