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

/* Shared Lua helpers: the meta of a task, read and written. */
#define LUA_META                                                                                   \
    "local function parse(m)\n"                                                                    \
    "  local st, att, ep, prio, maxr, dlv =\n"                                                     \
    "    string.match(m, '^(%a) (%d+) (%d+) (%d+) (%d+) (%d+)$')\n"                                \
    "  return st, tonumber(att), tonumber(ep), tonumber(prio), tonumber(maxr), tonumber(dlv)\n"    \
    "end\n"                                                                                        \
    "local function meta(st, att, ep, prio, maxr, dlv)\n"                                          \
    "  return st .. ' ' .. att .. ' ' .. ep .. ' ' .. prio .. ' ' .. maxr .. ' ' .. dlv\n"         \
    "end\n"

/* Staged writes. A script reads what it needs with one HMGET per hash, decides
 * per task, stages its writes here and sends them with flush(): one command
 * per structure per call, not a few per task, which is where Redis spent its
 * time (each redis.call costs more than the command it runs). Staged writes of
 * one flush never touch the same id twice in one structure. The FIFO counter
 * costs one command per call: dispatch reserves its numbers with INCRBY, the
 * other scripts read it once and write it back once. Arguments go out in
 * chunks of 4,000 (an even number: pairs stay whole), under Lua's limit for
 * unpack. */
#define LUA_BATCH                                                                                  \
    "local function each_chunk(list, fn)\n"                                                        \
    "  local n, i = #list, 1\n"                                                                    \
    "  while i <= n do\n"                                                                          \
    "    local j = i + 3999\n"                                                                     \
    "    if j > n then j = n end\n"                                                                \
    "    fn(i, j)\n"                                                                               \
    "    i = j + 1\n"                                                                              \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function call_chunked(cmd, key, list)\n"                                                \
    "  each_chunk(list, function(i, j) redis.call(cmd, key, unpack(list, i, j)) end)\n"            \
    "end\n"                                                                                        \
    "local function hmget(key, ids)\n"                                                             \
    "  local out = {}\n"                                                                           \
    "  each_chunk(ids, function(i, j)\n"                                                           \
    "    local part = redis.call('HMGET', key, unpack(ids, i, j))\n"                               \
    "    for k = 1, #part do out[i + k - 1] = part[k] end\n"                                       \
    "  end)\n"                                                                                     \
    "  return out\n"                                                                               \
    "end\n"                                                                                        \
    "local S, seq, seq_saved\n"                                                                    \
    "local function stage_reset()\n"                                                               \
    "  S = {job = {}, jdel = {}, meta = {}, mdel = {}, cdel = {}, ldel = {}, leases = {},\n"       \
    "       sched = {}, ready = {}, ddel = {}, done = {}, dexp = {}}\n"                            \
    "end\n"                                                                                        \
    "stage_reset()\n"                                                                              \
    "local function push2(t, a, b)\n"                                                              \
    "  t[#t + 1] = a\n"                                                                            \
    "  t[#t + 1] = b\n"                                                                            \
    "end\n"                                                                                        \
    "local function next_seq()\n"                                                                  \
    "  if not seq then seq = tonumber(redis.call('GET', KEYS[7]) or '0') end\n"                    \
    "  seq = seq + 1\n"                                                                            \
    "  return seq\n"                                                                               \
    "end\n"                                                                                        \
    "local function reserve_seq(n)\n"                                                              \
    "  local top = redis.call('INCRBY', KEYS[7], n)\n"                                             \
    "  seq, seq_saved = top - n, top\n"                                                            \
    "end\n"                                                                                        \
    "local function make_ready(id, att, ep, prio, maxr, dlv)\n"                                    \
    "  push2(S.meta, id, meta('p', att, ep, prio, maxr, dlv))\n"                                   \
    "  push2(S.ready, (11 - prio) * 1e13 + next_seq(), id)\n"                                      \
    "end\n"                                                                                        \
    "local function finish(id, outcome, now, ttl)\n"                                               \
    "  S.jdel[#S.jdel + 1] = id\n"                                                                 \
    "  S.mdel[#S.mdel + 1] = id\n"                                                                 \
    "  S.cdel[#S.cdel + 1] = id\n"                                                                 \
    "  S.ldel[#S.ldel + 1] = id\n"                                                                 \
    "  if ttl > 0 then\n"                                                                          \
    "    push2(S.done, id, outcome)\n"                                                             \
    "    push2(S.dexp, now + ttl, id)\n"                                                           \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function flush()\n"                                                                     \
    "  call_chunked('HSET', KEYS[4], S.job)\n"                                                     \
    "  call_chunked('HDEL', KEYS[4], S.jdel)\n"                                                    \
    "  call_chunked('HSET', KEYS[5], S.meta)\n"                                                    \
    "  call_chunked('HDEL', KEYS[5], S.mdel)\n"                                                    \
    "  if #S.cdel > 0 and redis.call('SCARD', KEYS[6]) > 0 then\n"                                 \
    "    call_chunked('SREM', KEYS[6], S.cdel)\n"                                                  \
    "  end\n"                                                                                      \
    "  call_chunked('ZREM', KEYS[3], S.ldel)\n"                                                    \
    "  call_chunked('ZADD', KEYS[3], S.leases)\n"                                                  \
    "  call_chunked('ZADD', KEYS[2], S.sched)\n"                                                   \
    "  call_chunked('ZADD', KEYS[1], S.ready)\n"                                                   \
    "  call_chunked('HDEL', KEYS[9], S.ddel)\n"                                                    \
    "  call_chunked('ZREM', KEYS[10], S.ddel)\n"                                                   \
    "  call_chunked('HSET', KEYS[9], S.done)\n"                                                    \
    "  call_chunked('ZADD', KEYS[10], S.dexp)\n"                                                   \
    "  if seq and (not seq_saved or seq > seq_saved) then\n"                                       \
    "    redis.call('SET', KEYS[7], seq)\n"                                                        \
    "    seq_saved = seq\n"                                                                        \
    "  end\n"                                                                                      \
    "  stage_reset()\n"                                                                            \
    "end\n"                                                                                        \
    "local function wake(n)\n"                                                                     \
    "  if n <= 0 then return end\n"                                                                \
    "  if n > 8 then n = 8 end\n"                                                                  \
    "  local ones = {}\n"                                                                          \
    "  for i = 1, n do ones[i] = '1' end\n"                                                        \
    "  redis.call('LPUSH', KEYS[8], unpack(ones))\n"                                               \
    "  redis.call('LTRIM', KEYS[8], 0, 31)\n"                                                      \
    "end\n"                                                                                        \
    "local function expire_done(now)\n"                                                            \
    "  local old = redis.call('ZRANGEBYSCORE', KEYS[10], '-inf', now, 'LIMIT', 0, 1000)\n"         \
    "  if #old > 0 then\n"                                                                         \
    "    redis.call('HDEL', KEYS[9], unpack(old))\n"                                               \
    "    redis.call('ZREM', KEYS[10], unpack(old))\n"                                              \
    "  end\n"                                                                                      \
    "  return #old == 1000\n"                                                                      \
    "end\n"                                                                                        \
    "local function leased(m, tok)\n"                                                              \
    "  if not m then return nil end\n"                                                             \
    "  local st, att, ep, prio, maxr, dlv = parse(m)\n"                                            \
    "  if st ~= 'r' or ep * 1000000 + dlv ~= tok then return nil end\n"                            \
    "  return att, ep, prio, maxr, dlv\n"                                                          \
    "end\n"

/* ARGV: now_ms, then per task 7 values: id, payload, priority, run_at_ms,
 * epoch, attempts, max_retries. A task Redis already holds is skipped, which
 * makes dispatch safe to repeat (reconciler, outbox relay, retries of a
 * failed pipeline). A copy of an earlier outcome can only exist for a task
 * dispatched again (epoch > 0: reconciler, retry), so only those look for
 * one. Returns how many tasks were added. */
static const char dispatch_lua[] =
    LUA_META LUA_BATCH "local now = tonumber(ARGV[1])\n"
                       "local ids = {}\n"
                       "for i = 2, #ARGV, 7 do ids[#ids + 1] = ARGV[i] end\n"
                       "local held = hmget(KEYS[5], ids)\n"
                       "local fresh = 0\n"
                       "for k = 1, #ids do if not held[k] then fresh = fresh + 1 end end\n"
                       "if fresh > 0 then reserve_seq(fresh) end\n"
                       "local added, ready, seen = 0, 0, {}\n"
                       "for k = 1, #ids do\n"
                       "  local i, id = 2 + (k - 1) * 7, ids[k]\n"
                       "  if not held[k] and not seen[id] then\n"
                       "    seen[id] = true\n"
                       "    local prio, runat = tonumber(ARGV[i+2]), tonumber(ARGV[i+3])\n"
                       "    local ep, att, maxr = ARGV[i+4], ARGV[i+5], ARGV[i+6]\n"
                       "    push2(S.job, id, ARGV[i+1])\n"
                       "    if ep ~= '0' then S.ddel[#S.ddel + 1] = id end\n"
                       "    if runat > now then\n"
                       "      push2(S.meta, id, meta('s', att, ep, prio, maxr, 0))\n"
                       "      push2(S.sched, runat, id)\n"
                       "    else\n"
                       "      make_ready(id, att, ep, prio, maxr, 0)\n"
                       "      ready = ready + 1\n"
                       "    end\n"
                       "    added = added + 1\n"
                       "  end\n"
                       "end\n"
                       "flush()\n"
                       "wake(ready)\n"
                       "return added\n";

/* The same ARGV and reply as dispatch, for exactly one task: what a single
 * enqueue sends. Without the batch machinery (staging tables and the helpers
 * that build them on every call) Redis spends about half the time on it. */
static const char dispatch_one_lua[] =
    "local now, id = tonumber(ARGV[1]), ARGV[2]\n"
    "if redis.call('HEXISTS', KEYS[5], id) == 1 then return 0 end\n"
    "local prio, runat = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local tail = ' ' .. ARGV[7] .. ' ' .. ARGV[6] .. ' ' .. prio .. ' ' .. ARGV[8] .. ' 0'\n"
    "redis.call('HSET', KEYS[4], id, ARGV[3])\n"
    "if ARGV[6] ~= '0' then\n"
    "  redis.call('HDEL', KEYS[9], id)\n"
    "  redis.call('ZREM', KEYS[10], id)\n"
    "end\n"
    "if runat > now then\n"
    "  redis.call('HSET', KEYS[5], id, 's' .. tail)\n"
    "  redis.call('ZADD', KEYS[2], runat, id)\n"
    "  return 1\n"
    "end\n"
    "local seq = redis.call('INCR', KEYS[7])\n"
    "redis.call('HSET', KEYS[5], id, 'p' .. tail)\n"
    "redis.call('ZADD', KEYS[1], (11 - prio) * 1e13 + seq, id)\n"
    "redis.call('LPUSH', KEYS[8], '1')\n"
    "redis.call('LTRIM', KEYS[8], 0, 31)\n"
    "return 1\n";

/* ARGV: id. Withdraws a waiting task ("withdrawn"), flags a leased one
 * ("requested"), or reports that Redis does not hold it ("absent"). */
static const char cancel_lua[] = LUA_META "local id = ARGV[1]\n"
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
static const char probe_lua[] = LUA_META "local out = {}\n"
                                         "for i = 1, #ARGV do\n"
                                         "  local id = ARGV[i]\n"
                                         "  out[i] = {redis.call('HGET', KEYS[5], id) or '',\n"
                                         "            redis.call('ZSCORE', KEYS[3], id) or '',\n"
                                         "            redis.call('HGET', KEYS[9], id) or ''}\n"
                                         "end\n"
                                         "return out\n";

/* Returns {ready, waiting for a time, leased, cached outcomes}. */
static const char depth_lua[] =
    LUA_META "return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]),\n"
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
static const char take_lua[] = LUA_META LUA_BATCH
    "local now, lease, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if now == 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "end\n"
    "local ttl = tonumber(ARGV[4])\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 500)\n"
    "if #due > 0 then\n"
    "  redis.call('ZREM', KEYS[2], unpack(due))\n"
    "  local ms = hmget(KEYS[5], due)\n"
    "  for k, id in ipairs(due) do\n"
    "    if ms[k] then\n"
    "      local st, att, ep, prio, maxr, dlv = parse(ms[k])\n"
    "      make_ready(id, att, ep, prio, maxr, dlv)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local reclaimed = {}\n"
    "local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)\n"
    "if #expired > 0 then\n"
    "  redis.call('ZREM', KEYS[3], unpack(expired))\n"
    "  local ms = hmget(KEYS[5], expired)\n"
    "  for k, id in ipairs(expired) do\n"
    "    if ms[k] then\n"
    "      local st, att, ep, prio, maxr, dlv = parse(ms[k])\n"
    "      local state\n"
    "      if redis.call('SISMEMBER', KEYS[6], id) == 1 then\n"
    "        state = 'cancelled'\n"
    "        finish(id, cjson.encode({status = state, error = 'cancelled; its worker was lost'}), "
    "now, ttl)\n"
    "      elseif att > maxr then\n"
    "        state = 'failed'\n"
    "        finish(id, cjson.encode({status = state, error = 'worker lost: lease expired on the "
    "last attempt'}), now, ttl)\n"
    "      else\n"
    "        state = 'requeued'\n"
    "        make_ready(id, att, ep, prio, maxr, dlv)\n"
    "      end\n"
    "      reclaimed[#reclaimed + 1] = {id, state, att, ep * 1000000 + dlv}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "flush()\n"
    "local more_expired = expire_done(now)\n"
    "local taken = {}\n"
    "while #taken < max do\n"
    "  local want = max - #taken\n"
    "  local pop = redis.call('ZPOPMIN', KEYS[1], want)\n"
    "  if #pop == 0 then break end\n"
    "  local ids = {}\n"
    "  for k = 1, #pop, 2 do ids[#ids + 1] = pop[k] end\n"
    "  local ms = hmget(KEYS[5], ids)\n"
    "  local live, info = {}, {}\n"
    "  for k, id in ipairs(ids) do\n"
    "    if ms[k] then\n"
    "      local st, att, ep, prio, maxr, dlv = parse(ms[k])\n"
    "      att, dlv = att + 1, dlv + 1\n"
    "      push2(S.meta, id, meta('r', att, ep, prio, maxr, dlv))\n"
    "      push2(S.leases, now + lease, id)\n"
    "      live[#live + 1] = id\n"
    "      info[#live] = {att, ep * 1000000 + dlv}\n"
    "    end\n"
    "  end\n"
    "  if #live > 0 then\n"
    "    local payloads = hmget(KEYS[4], live)\n"
    "    for k, id in ipairs(live) do\n"
    "      taken[#taken + 1] = {id, payloads[k] or '{}', info[k][1], info[k][2]}\n"
    "    end\n"
    "  end\n"
    "  if #ids < want then break end\n"
    "end\n"
    "flush()\n"
    "local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
    "local next_due = -1\n"
    "if #nxt == 2 then next_due = tonumber(nxt[2]) end\n"
    "if more_expired then next_due = now end\n"
    "return {taken, reclaimed, next_due}\n";

/* ARGV: now_ms, then per delivery 5 values: id, token, outcome, arg, ttl_ms.
 * outcome "completed" / "failed" / "cancelled": arg is the outcome JSON,
 * cached in done for ttl_ms; "retry": arg is the Unix ms when due;
 * "release": hand back, the attempt not counted. A delivery whose token does
 * not match the lease Redis holds gets 0 (stale), else 1. */
static const char settle_lua[] =
    LUA_META LUA_BATCH "local now = tonumber(ARGV[1])\n"
                       "local ids = {}\n"
                       "for i = 2, #ARGV, 5 do ids[#ids + 1] = ARGV[i] end\n"
                       "local ms = hmget(KEYS[5], ids)\n"
                       "local out, ready = {}, 0\n"
                       "for k = 1, #ids do\n"
                       "  local i, id = 2 + (k - 1) * 5, ids[k]\n"
                       "  local tok, outcome, arg = tonumber(ARGV[i+1]), ARGV[i+2], ARGV[i+3]\n"
                       "  local att, ep, prio, maxr, dlv = leased(ms[k], tok)\n"
                       "  local ok = 0\n"
                       "  if att then\n"
                       "    ok = 1\n"
                       "    if outcome == 'retry' then\n"
                       "      S.ldel[#S.ldel + 1] = id\n"
                       "      S.cdel[#S.cdel + 1] = id\n"
                       "      push2(S.meta, id, meta('s', att, ep, prio, maxr, dlv))\n"
                       "      push2(S.sched, tonumber(arg), id)\n"
                       "    elseif outcome == 'release' then\n"
                       "      S.ldel[#S.ldel + 1] = id\n"
                       "      S.cdel[#S.cdel + 1] = id\n"
                       "      make_ready(id, att - 1, ep, prio, maxr, dlv)\n"
                       "      ready = ready + 1\n"
                       "    else\n"
                       "      finish(id, arg, now, tonumber(ARGV[i+4]))\n"
                       "    end\n"
                       "  end\n"
                       "  out[k] = ok\n"
                       "end\n"
                       "flush()\n"
                       "wake(ready)\n"
                       "local more_expired = expire_done(now)\n"
                       "return out\n";

/* ARGV: now_ms, lease_ms, then per delivery 2 values: id, token. Extends
 * each lease still held by that delivery. Returns per delivery 0 (lease
 * lost), 1 (extended) or 2 (extended, and a cancel was requested). */
static const char heartbeat_lua[] = LUA_META LUA_BATCH
    "local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local ids = {}\n"
    "for i = 3, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end\n"
    "local ms = hmget(KEYS[5], ids)\n"
    "local any_cancel = redis.call('SCARD', KEYS[6]) > 0\n"
    "local out = {}\n"
    "for k = 1, #ids do\n"
    "  local id = ids[k]\n"
    "  local r = 0\n"
    "  if leased(ms[k], tonumber(ARGV[2 + 2 * k])) then\n"
    "    push2(S.leases, now + lease, id)\n"
    "    r = 1\n"
    "    if any_cancel and redis.call('SISMEMBER', KEYS[6], id) == 1 then r = 2 end\n"
    "  end\n"
    "  out[k] = r\n"
    "end\n"
    "flush()\n"
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
    [AIPALQ__SCRIPT_DISPATCH_ONE] = {"dispatch_one", dispatch_one_lua},
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
