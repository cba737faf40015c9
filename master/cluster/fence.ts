/**
 * A fence runs a write only the leader may make (see leadership.ts): in one transaction that first
 * proves this master still leads, or not at all (NotLeader). Components take one as a property, so
 * a component built alone (tests, benchmarks) runs unfenced.
 */
export type Fence = <T>(fn: () => Promise<T>) => Promise<T>;

export const unfenced: Fence = (fn) => fn();

/** This master lost the lead: the write was refused. HTTP 503 where it reaches a request. */
export class NotLeader extends Error {
  readonly status = 503;
  readonly expose = true;
  constructor(message = 'this master is not the leader (any more)') { super(message); }
}

/** Runs a fenced write; undefined when this master no longer leads (other errors go on). */
export async function ifLeader<T>(fence: Fence, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fence(fn);
  } catch (e) {
    if (e instanceof NotLeader) return undefined;
    throw e;
  }
}
