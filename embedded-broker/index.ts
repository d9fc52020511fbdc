// Public interface of the embedded broker stage.
export { startBroker, type BrokerOptions, type BrokerLimits, type EmbeddedBroker } from './broker.js';
export type { AclRule } from './acl.js';
export type { Users, AnonymousPolicy } from './auth.js';
export type { Acceptance, InboundMessage, PublishHook } from './publish.js';
export { LoginGuard, type LoginLimits } from './login-guard.js';
export type { BrokerStats } from './stats.js';
export { topicNameProblem } from './packet-guard.js';
export type { SessionControl, SessionInfo } from './persistent-sessions.js';
export type { Sealer } from './persistence/level.js';
export type { Logger } from './logger.js';
