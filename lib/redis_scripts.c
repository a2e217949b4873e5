/* The Lua scripts that are the library's only way of changing Redis.
 *
 * Every script takes the ten keys of one queue (AIPALQ__K_*: all share the
 * hash tag {queue}, so one script never crosses a cluster slot) and touches
 * no other key. Per queue:
 *   ready     ZSET  id -> (11 - priority) * 1e13 + seq: ZPOPMIN gives the most
 *                   urgent priority first, FIFO within a priority
 *   sched     ZSET  id -> Unix ms when due (delayed tasks, retry backoff)
 *   leases    ZSET  id -> Unix ms when the delivery's lease runs out
 *   job       HASH  id -> the task's payload as the worker receives it (JSON)
 *   meta      HASH  id -> "state attempts epoch priority max_retries deliveries"
 *                   state: p ready, s waiting for a time, r leased
 *   cancel    SET   ids of leased tasks whose cancel was requested
 *   seq       STR   FIFO counter
 *   wake      LIST  tokens that wake blocked workers (BLPOP), capped
 *   done      HASH  id -> final outcome JSON: copies kept for a type's result
 *                   TTL, and outcomes Redis decided first (expired leases)
 *   done_exp  ZSET  id -> Unix ms when the cached outcome expires
 *
 * A delivery's fencing token is epoch * 1e6 + deliveries: deliveries counts
 * every lease of the task (also those handed back uncounted as attempts) and
 * epoch counts re-dispatches from PostgreSQL, so tokens only grow, also
 * across a Redis that lost its data. */
#include "internal.h"

/* Shared Lua helpers, prepended to every script. */
#define LUA_PRELUDE                                                                                \
    "local function parse(m)\n"                                                                    \
    "  local st, att, ep, prio, maxr, dlv =\n"                                                     \
    "    string.match(m, '^(%a) (%d+) (%d+) (%d+) (%d+) (%d+)$')\n"                                \
    "  return st, tonumber(att), tonumber(ep), tonumber(prio), tonumber(maxr), tonumber(dlv)\n"    \
    "end\n"                                                                                        \
    "local function meta(st, att, ep, prio, maxr, dlv)\n"                                          \
    "  return st .. ' ' .. att .. ' ' .. ep .. ' ' .. prio .. ' ' .. maxr .. ' ' .. dlv\n"         \
    "end\n"                                                                                        \
    "local function make_ready(id, att, ep, prio, maxr, dlv)\n"                                    \
    "  redis.call('HSET', KEYS[5], id, meta('p', att, ep, prio, maxr, dlv))\n"                     \
    "  local seq = redis.call('INCR', KEYS[7])\n"                                                  \
    "  redis.call('ZADD', KEYS[1], (11 - prio) * 1e13 + seq, id)\n"                                \
    "end\n"                                                                                        \
    "local function wake(n)\n"                                                                     \
    "  if n <= 0 then return end\n"                                                                \
    "  if n > 8 then n = 8 end\n"                                                                  \
    "  for i = 1, n do redis.call('LPUSH', KEYS[8], '1') end\n"                                    \
    "  redis.call('LTRIM', KEYS[8], 0, 31)\n"                                                      \
    "end\n"                                                                                        \
    "local function finish(id, outcome, now, ttl)\n"                                               \
    "  redis.call('HDEL', KEYS[4], id)\n"                                                          \
    "  redis.call('HDEL', KEYS[5], id)\n"                                                          \
    "  redis.call('SREM', KEYS[6], id)\n"                                                          \
    "  redis.call('ZREM', KEYS[3], id)\n"                                                          \
    "  if ttl > 0 then\n"                                                                          \
    "    redis.call('HSET', KEYS[9], id, outcome)\n"                                               \
    "    redis.call('ZADD', KEYS[10], now + ttl, id)\n"                                            \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function expire_done(now)\n"                                                            \
    "  local old = redis.call('ZRANGEBYSCORE', KEYS[10], '-inf', now, 'LIMIT', 0, 1000)\n"         \
    "  if #old > 0 then\n"                                                                         \
    "    redis.call('HDEL', KEYS[9], unpack(old))\n"                                               \
    "    redis.call('ZREM', KEYS[10], unpack(old))\n"                                              \
    "  end\n"                                                                                      \
    "  return #old == 1000\n"                                                                      \
    "end\n"

/* ARGV: now_ms, then per task 7 values: id, payload, priority, run_at_ms,
 * epoch, attempts, max_retries. A task Redis already holds is skipped, which
 * makes dispatch safe to repeat (reconciler, outbox relay, retries of a
 * failed pipeline). A copy of an earlier outcome can only exist for a task
 * dispatched again (epoch > 0: reconciler, retry), so only those look for
 * one. Returns how many tasks were added. */
static const char dispatch_lua[] =
    LUA_PRELUDE "local now = tonumber(ARGV[1])\n"
                "local added, ready = 0, 0\n"
                "for i = 2, #ARGV, 7 do\n"
                "  local id = ARGV[i]\n"
                "  if redis.call('HEXISTS', KEYS[5], id) == 0 then\n"
                "    local prio, runat = tonumber(ARGV[i+2]), tonumber(ARGV[i+3])\n"
                "    local ep, att, maxr = ARGV[i+4], ARGV[i+5], ARGV[i+6]\n"
                "    redis.call('HSET', KEYS[4], id, ARGV[i+1])\n"
                "    if ep ~= '0' then\n"
                "      redis.call('HDEL', KEYS[9], id)\n"
                "      redis.call('ZREM', KEYS[10], id)\n"
                "    end\n"
                "    if runat > now then\n"
                "      redis.call('HSET', KEYS[5], id, meta('s', att, ep, prio, maxr, 0))\n"
                "      redis.call('ZADD', KEYS[2], runat, id)\n"
                "    else\n"
                "      make_ready(id, att, ep, prio, maxr, 0)\n"
                "      ready = ready + 1\n"
                "    end\n"
                "    added = added + 1\n"
                "  end\n"
                "end\n"
                "wake(ready)\n"
                "return added\n";

/* ARGV: id. Withdraws a waiting task ("withdrawn"), flags a leased one
 * ("requested"), or reports that Redis does not hold it ("absent"). */
static const char cancel_lua[] = LUA_PRELUDE "local id = ARGV[1]\n"
                                             "local m = redis.call('HGET', KEYS[5], id)\n"
                                             "if not m then return 'absent' end\n"
                                             "if string.sub(m, 1, 1) == 'r' then\n"
                                             "  redis.call('SADD', KEYS[6], id)\n"
                                             "  return 'requested'\n"
                                             "end\n"
                                             "redis.call('ZREM', KEYS[1], id)\n"
                                             "redis.call('ZREM', KEYS[2], id)\n"
                                             "redis.call('HDEL', KEYS[4], id)\n"
                                             "redis.call('HDEL', KEYS[5], id)\n"
                                             "return 'withdrawn'\n";

/* ARGV: ids. Returns, per id, {meta or '', lease deadline or '', done or ''}:
 * what Redis knows of each task, for the reconciler. */
static const char probe_lua[] = LUA_PRELUDE "local out = {}\n"
                                            "for i = 1, #ARGV do\n"
                                            "  local id = ARGV[i]\n"
                                            "  out[i] = {redis.call('HGET', KEYS[5], id) or '',\n"
                                            "            redis.call('ZSCORE', KEYS[3], id) or '',\n"
                                            "            redis.call('HGET', KEYS[9], id) or ''}\n"
                                            "end\n"
                                            "return out\n";

/* Returns {ready, waiting for a time, leased, cached outcomes}. */
static const char depth_lua[] =
    LUA_PRELUDE "return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]),\n"
                "        redis.call('ZCARD', KEYS[3]), redis.call('HLEN', KEYS[9])}\n";

/* ARGV: now_ms (0: Redis's clock), lease_ms, max, done_ttl_ms. Promotes due tasks, reclaims
 * expired leases, then leases up to `max` tasks. Returns
 * {taken, reclaimed, next_due} where taken is a list of
 * {id, payload, attempts, token}, reclaimed a list of
 * {id, new state, attempts, token of the expired delivery} for the caller to
 * record in PostgreSQL ("requeued": will run again; "failed": out of
 * attempts; "cancelled": its cancel was pending), and next_due the Unix ms of
 * the earliest waiting task or -1. Expired cached outcomes are dropped 1,000
 * per call; when more wait, next_due is now, so that an idle worker calls
 * again at once and Redis returns to its baseline soon after a burst. */
static const char take_lua[] = LUA_PRELUDE
    "local now, lease, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if now == 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "end\n"
    "local ttl = tonumber(ARGV[4])\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 500)\n"
    "for _, id in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[2], id)\n"
    "  local m = redis.call('HGET', KEYS[5], id)\n"
    "  if m then\n"
    "    local st, att, ep, prio, maxr, dlv = parse(m)\n"
    "    make_ready(id, att, ep, prio, maxr, dlv)\n"
    "  end\n"
    "end\n"
    "local reclaimed = {}\n"
    "local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)\n"
    "for _, id in ipairs(expired) do\n"
    "  redis.call('ZREM', KEYS[3], id)\n"
    "  local m = redis.call('HGET', KEYS[5], id)\n"
    "  if m then\n"
    "    local st, att, ep, prio, maxr, dlv = parse(m)\n"
    "    local state\n"
    "    if redis.call('SISMEMBER', KEYS[6], id) == 1 then\n"
    "      state = 'cancelled'\n"
    "      finish(id, cjson.encode({status = state, error = 'cancelled; its worker was lost'}), "
    "now, ttl)\n"
    "    elseif att > maxr then\n"
    "      state = 'failed'\n"
    "      finish(id, cjson.encode({status = state, error = 'worker lost: lease expired on the "
    "last attempt'}), now, ttl)\n"
    "    else\n"
    "      state = 'requeued'\n"
    "      make_ready(id, att, ep, prio, maxr, dlv)\n"
    "    end\n"
    "    reclaimed[#reclaimed + 1] = {id, state, att, ep * 1000000 + dlv}\n"
    "  end\n"
    "end\n"
    "local more_expired = expire_done(now)\n"
    "local taken = {}\n"
    "while #taken < max do\n"
    "  local pop = redis.call('ZPOPMIN', KEYS[1])\n"
    "  if #pop == 0 then break end\n"
    "  local id = pop[1]\n"
    "  local m = redis.call('HGET', KEYS[5], id)\n"
    "  if m then\n"
    "    local st, att, ep, prio, maxr, dlv = parse(m)\n"
    "    att, dlv = att + 1, dlv + 1\n"
    "    redis.call('HSET', KEYS[5], id, meta('r', att, ep, prio, maxr, dlv))\n"
    "    redis.call('ZADD', KEYS[3], now + lease, id)\n"
    "    taken[#taken + 1] = {id, redis.call('HGET', KEYS[4], id) or '{}', att, ep * 1000000 + "
    "dlv}\n"
    "  end\n"
    "end\n"
    "local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
    "local next_due = -1\n"
    "if #nxt == 2 then next_due = tonumber(nxt[2]) end\n"
    "if more_expired then next_due = now end\n"
    "return {taken, reclaimed, next_due}\n";

/* Finds the meta of a leased task whose current delivery has token `tok`.
 * State 'r' and an entry in leases go together: every script that ends a
 * lease also changes the meta, so the meta alone answers. */
#define LUA_LEASED                                                                                 \
    "local function leased(id, tok)\n"                                                             \
    "  local m = redis.call('HGET', KEYS[5], id)\n"                                                \
    "  if not m then return nil end\n"                                                             \
    "  local st, att, ep, prio, maxr, dlv = parse(m)\n"                                            \
    "  if st ~= 'r' or ep * 1000000 + dlv ~= tok then return nil end\n"                            \
    "  return att, ep, prio, maxr, dlv\n"                                                          \
    "end\n"

/* ARGV: now_ms, then per delivery 5 values: id, token, outcome, arg, ttl_ms.
 * outcome "completed" / "failed" / "cancelled": arg is the outcome JSON,
 * cached in done for ttl_ms; "retry": arg is the Unix ms when due;
 * "release": hand back, the attempt not counted. A delivery whose token does
 * not match the lease Redis holds gets 0 (stale), else 1. */
static const char settle_lua[] = LUA_PRELUDE LUA_LEASED
    "local now = tonumber(ARGV[1])\n"
    "local out, ready = {}, 0\n"
    "for i = 2, #ARGV, 5 do\n"
    "  local id, tok, outcome, arg = ARGV[i], tonumber(ARGV[i+1]), ARGV[i+2], ARGV[i+3]\n"
    "  local att, ep, prio, maxr, dlv = leased(id, tok)\n"
    "  local ok = 0\n"
    "  if att then\n"
    "    ok = 1\n"
    "    if outcome == 'retry' then\n"
    "      redis.call('ZREM', KEYS[3], id)\n"
    "      redis.call('SREM', KEYS[6], id)\n"
    "      redis.call('HSET', KEYS[5], id, meta('s', att, ep, prio, maxr, dlv))\n"
    "      redis.call('ZADD', KEYS[2], tonumber(arg), id)\n"
    "    elseif outcome == 'release' then\n"
    "      redis.call('ZREM', KEYS[3], id)\n"
    "      redis.call('SREM', KEYS[6], id)\n"
    "      make_ready(id, att - 1, ep, prio, maxr, dlv)\n"
    "      ready = ready + 1\n"
    "    else\n"
    "      finish(id, arg, now, tonumber(ARGV[i+4]))\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = ok\n"
    "end\n"
    "wake(ready)\n"
    "local more_expired = expire_done(now)\n"
    "return out\n";

/* ARGV: now_ms, lease_ms, then per delivery 2 values: id, token. Extends
 * each lease still held by that delivery. Returns per delivery 0 (lease
 * lost), 1 (extended) or 2 (extended, and a cancel was requested). */
static const char heartbeat_lua[] =
    LUA_PRELUDE LUA_LEASED "local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
                           "local out = {}\n"
                           "for i = 3, #ARGV, 2 do\n"
                           "  local id, tok = ARGV[i], tonumber(ARGV[i+1])\n"
                           "  local r = 0\n"
                           "  if leased(id, tok) then\n"
                           "    redis.call('ZADD', KEYS[3], now + lease, id)\n"
                           "    r = 1\n"
                           "    if redis.call('SISMEMBER', KEYS[6], id) == 1 then r = 2 end\n"
                           "  end\n"
                           "  out[#out + 1] = r\n"
                           "end\n"
                           "return out\n";

/* The worker registry is not per queue: KEYS[1] is the registry hash
 * (worker id -> JSON), KEYS[2] a ZSET of last heartbeats. ARGV: now_ms,
 * dead_after_ms, then optionally worker id and its JSON to publish (an empty
 * JSON removes the worker). Returns {id, json, last_seen_ms, alive} for every
 * worker, forgetting those silent for 10 x dead_after_ms. */
static const char registry_lua[] =
    "local now, dead = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "if ARGV[3] then\n"
    "  if ARGV[4] == '' then\n"
    "    redis.call('HDEL', KEYS[1], ARGV[3])\n"
    "    redis.call('ZREM', KEYS[2], ARGV[3])\n"
    "  else\n"
    "    redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])\n"
    "    redis.call('ZADD', KEYS[2], now, ARGV[3])\n"
    "  end\n"
    "end\n"
    "local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - 10 * dead)\n"
    "if #gone > 0 then\n"
    "  redis.call('HDEL', KEYS[1], unpack(gone))\n"
    "  redis.call('ZREM', KEYS[2], unpack(gone))\n"
    "end\n"
    "local out = {}\n"
    "local all = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')\n"
    "for i = 1, #all, 2 do\n"
    "  local seen = tonumber(all[i+1])\n"
    "  local alive = 0\n"
    "  if seen > now - dead then alive = 1 end\n"
    "  out[#out + 1] = {all[i], redis.call('HGET', KEYS[1], all[i]) or '{}', seen, alive}\n"
    "end\n"
    "return out\n";

static const struct {
    const char *name;
    const char *source;
} scripts[AIPALQ__SCRIPT_COUNT] = {
    [AIPALQ__SCRIPT_DISPATCH] = {"dispatch", dispatch_lua},
    [AIPALQ__SCRIPT_CANCEL] = {"cancel", cancel_lua},
    [AIPALQ__SCRIPT_PROBE] = {"probe", probe_lua},
    [AIPALQ__SCRIPT_DEPTH] = {"depth", depth_lua},
    [AIPALQ__SCRIPT_TAKE] = {"take", take_lua},
    [AIPALQ__SCRIPT_SETTLE] = {"settle", settle_lua},
    [AIPALQ__SCRIPT_HEARTBEAT] = {"heartbeat", heartbeat_lua},
    [AIPALQ__SCRIPT_REGISTRY] = {"registry", registry_lua},
};

const char *aipalq__script_source(aipalq__script_id id)
{
    return scripts[id].source;
}

const char *aipalq__script_name(aipalq__script_id id)
{
    return scripts[id].name;
}
