/** Counters the broker keeps for $SYS, metrics and tests. */
export interface BrokerStats {
  clientsConnected: number;
  messagesReceived: number;
  messagesSent: number;
  publishDenied: number;
  subscribeDenied: number;
  /** Deliveries withheld because the client may not read their topic (a stale session, a changed role). */
  forwardDenied: number;
  queueDropped: number;
  malformedPackets: number;
  authFailures: number;
  connectionsRefused: number;
}

export function newStats(): BrokerStats {
  return {
    clientsConnected: 0,
    messagesReceived: 0,
    messagesSent: 0,
    publishDenied: 0,
    subscribeDenied: 0,
    forwardDenied: 0,
    queueDropped: 0,
    malformedPackets: 0,
    authFailures: 0,
    connectionsRefused: 0,
  };
}
