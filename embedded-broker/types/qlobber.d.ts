// Just what the broker uses of qlobber (which ships no types).
declare module 'qlobber/aedes/qlobber-sub.js' {
  interface SubValue {
    clientId: string;
    topic: string;
    qos?: number;
    rh?: number;
    rap?: boolean;
    nl?: boolean;
  }
  class QlobberSub {
    constructor(options: { wildcard_one: string; wildcard_some: string; separator: string; match_empty_levels?: boolean });
    subscriptionsCount: number;
    add(topic: string, value: SubValue): this;
    remove(topic: string, value: { clientId: string; topic: string }): this;
    match(topic: string): SubValue[];
  }
  export = QlobberSub;
}
