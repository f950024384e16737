// Types for telegraphy.js, the browser client of Telegraphy.

/** A place in a channel's stream. */
export interface Position {
  epoch: string;
  offset: number;
}

/** The metadata of an event. */
export interface EventMeta {
  /** "create", "update", "delete", "enter", "leave", "bulk_update", "bulk_delete" or a custom event's name. */
  event_type: string;
  verbose_name?: string;
  /** UTC, RFC 3339 with microseconds. */
  timestamp: string;
  /** Unique per event; the client drops duplicates by it. */
  id: string;
  /** The primary key: a scalar, or field -> value for composite keys. Absent on bulk and custom events. */
  pk?: unknown;
  /** On update: the JSON names of the assigned columns. */
  changed?: string[];
  /** On a soft delete. */
  soft?: boolean;
  /** On bulk_update and bulk_delete: the number of rows. */
  count?: number;
  /**
   * The row's version when its model declares one (events.Options.Version):
   * an integer, or a UTC timestamp with nine fractional digits.
   */
  version?: number | string;
}

/** An event as the hub delivers it. */
export interface TelegraphyEvent<T = any> {
  name: string;
  meta: EventMeta;
  /** The row; null on "leave" and on bulk events. */
  data: T;
}

/** Where an event was delivered. */
export interface EventInfo {
  channel: string;
  /** The event's offset in the channel; 0 when the hub keeps no history for it. */
  offset: number;
}

/**
 * Passed to "subscribed" handlers after each (re)subscribe, and to "lost"
 * handlers when the events after the position asked for (or, mid-stream,
 * events the hub could not deliver) are gone: the page should refetch state.
 */
export interface SubscribedInfo extends Position {
  /** False when the position asked for could not be served: refetch state. */
  recovered: boolean;
}

export type ConnectionState = "connecting" | "connected" | "disconnected";

/**
 * Error codes: the hub's protocol codes ("bad_request", "unauthorized",
 * "forbidden", "not_found", "limit", "internal"), close codes turned into
 * names ("policy" 1008, "too_big" 1009, "unauthorized" 4001,
 * "slow_consumer" 4008, "revoked" 4010), "token" when getToken failed,
 * "refetch" when a collection's refetch failed, and "bad_message" for a
 * message that is not JSON.
 */
export class TelegraphyError extends Error {
  code: string;
  /** The id of the request the hub answered with this error. */
  id?: number;
  /** The channel of the subscribe request that failed. */
  channel?: string;
  /** The WebSocket close code, for errors reported by a close. */
  closeCode?: number;
}

export interface TelegraphyOptions {
  /** The hub's WebSocket endpoint, e.g. "wss://example.com/telegraphy/ws"; http(s) and page-relative URLs are accepted. Default: "ws" beside telegraphy.js. */
  url?: string;
  /** A token for the first connection (tokens connect once). */
  token?: string;
  /** Returns a fresh token for each later connection. Without it, later connections say hello without a token. */
  getToken?: () => string | Promise<string>;
  /** Positions per channel (rendered by the template helper); subscribe() uses them when given no since. */
  positions?: Record<string, Position>;
  /** Reconnect delay floor in ms. Default 500. */
  minDelay?: number;
  /** Reconnect delay ceiling in ms. Default 20000. */
  maxDelay?: number;
  /** How long a connection attempt may take, from asking getToken to the hub's welcome, in ms. Default 10000. */
  connectTimeout?: number;
  /** How often to ping the hub, in ms; a ping unanswered by the next one drops the connection. 0 disables. Default 25000. */
  pingInterval?: number;
  /** How many event ids per channel are remembered to drop duplicates. Default 1000. */
  maxSeen?: number;
  /** A WebSocket constructor, where the global one is missing (older Node: the "ws" package). */
  WebSocket?: any;
}

export type EventHandler<T = any> = (event: TelegraphyEvent<T>, info: EventInfo) => void;

/** A member of a channel with presence: a subject, and the info object of its token. */
export interface PresenceMember {
  subject: string;
  info?: Record<string, unknown>;
}

/** The second argument of "join" and "leave" presence handlers. */
export interface PresenceInfo {
  channel: string;
  presence: true;
}

export interface SubscribeOptions {
  since?: Position;
  /**
   * On a channel with presence, hand "join" and "leave" notices to this
   * subscription (as (member, {channel, presence: true}); model "leave"
   * events come as (event, EventInfo)).
   */
  presence?: boolean;
}

/** One subscriber's view of a channel. */
export class Subscription {
  readonly channel: string;
  /** The last position seen on the channel, or null. */
  readonly position: Position | null;
  on(type: "subscribed" | "lost", fn: (info: SubscribedInfo) => void): this;
  on(type: "error", fn: (err: TelegraphyError) => void): this;
  /** Presence notices, for a subscription made with presence: true. */
  on(type: "join" | "leave", fn: (member: PresenceMember, info: PresenceInfo) => void): this;
  /** An event type ("create", "update", "delete", "enter", "leave", "bulk_update", "bulk_delete", a custom one), or "*" for every event. */
  on<T = any>(type: string, fn: EventHandler<T>): this;
  off(type: string, fn: (...args: any[]) => void): this;
  /**
   * Who is on the channel, ordered by subject. Rejects with a
   * TelegraphyError: "not_found" when the channel has no presence,
   * "not_subscribed" before the subscription is confirmed, "disconnected"
   * when the connection drops first.
   */
  presence(): Promise<PresenceMember[]>;
  /** Stops delivery to this subscription; the last one on a channel leaves it on the hub. */
  unsubscribe(): void;
}

/** A primary key as meta.pk carries it: a scalar, or field -> value for a composite key. */
export type PrimaryKey = string | number | Record<string, unknown>;

export interface CollectionOptions<T = any> {
  /**
   * The primary key of a row, as meta.pk carries it: the row's field
   * holding it, the fields of a composite key, or a function. Default "id".
   */
  key?: string | string[] | ((row: T) => PrimaryKey);
  /** The rows the page rendered. Default none. */
  rows?: T[];
  /**
   * The position rendered with the rows (the template helper's); events at
   * or before it are already in them. Default: the client's
   * positions[channel], else none (every event applies).
   */
  position?: Position;
  /**
   * Returns the rows afresh, optionally with the channel's position taken
   * before they were read. Called on "lost", bulk_update and bulk_delete;
   * retried with the client's backoff when it fails.
   */
  refetch: () => T[] | { rows: T[]; position?: Position } | Promise<T[] | { rows: T[]; position?: Position }>;
  /**
   * The version of a row (its field, or a function), for rows the page
   * rendered or refetch returned and events without meta.version; it must
   * compare as meta.version does (a number, or an RFC 3339 time). Default
   * none: a row's version comes from its events. A row given without a
   * version keeps the version held, as a lower bound.
   */
  version?: string | ((row: T) => number | string | undefined);
  /** How many deleted keys' versions are remembered to drop late events. Default 1000. */
  maxDeleted?: number;
}

/** What one batch of events (or a refetch) changed. */
export interface CollectionChange<T = any> {
  added: T[];
  updated: T[];
  /** The rows as they were before they went. */
  removed: T[];
}

/**
 * The rows of a channel, kept up to date: create, update and enter put a
 * row, delete and leave remove it, bulk events and "lost" refetch. Events
 * already in the rendered rows, and events older than the version held,
 * are dropped.
 */
export class Collection<T = any> {
  readonly channel: string;
  readonly closed: boolean;
  /** The rows, in the order they arrived; a new array after each change. */
  readonly rows: T[];
  /** The row with this primary key. */
  get(pk: PrimaryKey): T | undefined;
  /** One per batch of events (a frame, a recovery) or refetch that changed something. */
  on(type: "change", fn: (change: CollectionChange<T>) => void): this;
  /** A failed refetch (code "refetch", with cause); it is retried. */
  on(type: "error", fn: (err: TelegraphyError) => void): this;
  off(type: string, fn: (...args: any[]) => void): this;
  /**
   * Applies the page's own change at once, as its event would (with t.headers() on the
   * request, that event does not come back): the row as the app answered it, held unless
   * older (by version) than the row held; "change" reports it.
   */
  put(row: T): void;
  /** Removes the row with this primary key at once, as its delete event would. */
  remove(pk: PrimaryKey): void;
  /** Calls refetch() and replaces the rows; events that arrive meanwhile are applied on top. */
  refetch(): void;
  /** Stops following the channel. */
  close(): void;
}

/** A connection to a Telegraphy hub that reconnects until closed. */
export class Telegraphy {
  constructor(options?: TelegraphyOptions);
  readonly url: string;
  readonly state: ConnectionState;
  readonly closed: boolean;
  /** The session id and subject of the hub's last welcome. */
  readonly session: string | null;
  readonly subject: string | null;
  on(type: "state", fn: (state: ConnectionState) => void): this;
  on(type: "error", fn: (err: TelegraphyError) => void): this;
  off(type: string, fn: (...args: any[]) => void): this;
  subscribe(name: string, options?: SubscribeOptions): Subscription;
  /**
   * Headers to send with the app's own requests, e.g. fetch(url, { headers: t.headers() }):
   * {"X-Telegraphy-Session": session} while connected, {} otherwise. The hub then does not
   * send this connection the events of the writes the request makes (the app's server
   * stamps them with telegraphy.OriginMiddleware); the user's other tabs still get them.
   */
  headers(): Record<string, string>;
  /** A live list of the channel's rows, starting from the rows the page rendered. */
  collection<T = any>(name: string, options: CollectionOptions<T>): Collection<T>;
  /** Closes the connection for good: no more events, reconnects or timers. */
  close(): void;
}

/**
 * The page's client, configured by the JSON the Go template helper renders
 * into <script type="application/json" id="telegraphy-config">
 * ({url, token, tokenURL, positions}); options override it. Later calls
 * return the same client until it is closed.
 */
export function fromPage(options?: TelegraphyOptions): Telegraphy;
