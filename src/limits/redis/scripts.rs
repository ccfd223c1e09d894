//! The Lua scripts of the Redis backend: each decision is one script, and every key a
//! script names shares one hash slot (its `{tag}`), so it runs whole on one node of a
//! Redis Cluster too. Time comes from the Redis server, so replicas with skewed clocks
//! agree.

/// One bind: every quota and abuse rule, checked before anything is taken (docs/api.md
/// "Rate limits", docs/abuse.md).
/// KEYS: 1 user, 2 phone, 3 global, 4 country and 5 prefix GCRA arrival times; 6 country
/// and 7 prefix breaker hashes; 8 the safe-list; 9 the block list; 10 the client's arrival
/// time; 11 this call's answer. ARGV: see `admit_bind`. Answers {code, wait ms, shadowed
/// rules, what was taken (the bits of `Taken`)}: code 0 admitted, 1 user, 2 phone, 8 client, 3 country blocked, 4 prefix blocked,
/// 5 global, 6 country and 7 prefix budget spent.
///
/// Each call is decided once: its answer is kept under its own key (KEYS[11]) for a
/// minute, and the same call run again (the client resends it when a connection drops before
/// the answer, or after a failover) gets that answer and takes nothing again.
pub const BIND_SCRIPT: &str = r"
local done = redis.call('GET', KEYS[11])
if done then
  local code, wait, taken, shadow = string.match(done, '^(%d+)|(%d+)|(%d+)|(.*)$')
  return {tonumber(code), tonumber(wait), shadow, tonumber(taken)}
end
local function decide()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local DAY = 86400000
  local function step(key, interval, burst)
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then tat = now end
    local new_tat = tat + interval
    local allow_at = new_tat - burst * interval
    if allow_at > now then return nil, allow_at - now end
    return new_tat, 0
  end
  local takes = {}
  local function quota(key, interval, burst, bit)
    local tat, wait = step(key, interval, burst)
    if tat then takes[#takes + 1] = {key, tat, bit} end
    return tat, wait
  end
  local shadow = {}
  local tat, wait = quota(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 1)
  if not tat then return {1, wait, ''} end
  tat, wait = quota(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), 2)
  if not tat then return {2, wait, ''} end
  if tonumber(ARGV[25]) > 0 then
    tat, wait = quota(KEYS[10], tonumber(ARGV[25]), tonumber(ARGV[26]), 4)
    if not tat then return {8, wait, ''} end
  end

  local safe = ARGV[20] == '1'
  if not safe and redis.call('HLEN', KEYS[8]) > 0 then
    for i = 27, #ARGV do
      if redis.call('HEXISTS', KEYS[8], ARGV[i]) == 1 then safe = true break end
    end
  end

  local conversion = ARGV[14]
  local window, min_ratio, block_ms = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[19])
  local counting = (not safe) and conversion ~= 'off'
  local function breaker(key, min_sends, rule, label, field)
    local s = redis.call('HMGET', key, 'ws', 's', 'c', 'bu', 'lt', 'll')
    local ws, sends, done = tonumber(s[1]), tonumber(s[2] or 0), tonumber(s[3] or 0)
    local bu, lt, ll = tonumber(s[4]), tonumber(s[5]), tonumber(s[6])
    if bu then
      if bu > now then return true end
      ws, sends, done, bu = now, 0, 0, nil
      redis.call('HDEL', key, 'bu')
    end
    if not ws or now >= ws + window then ws, sends, done = now, 0, 0 end
    local tripped = sends >= min_sends and done < min_ratio * sends
    if tripped then ws, sends, done = now, 0, 0 end
    redis.call('HSET', key, 'ws', ws, 's', sends, 'c', done)
    -- Kept for the window, and for a day after a trip so that a repeat trip doubles.
    local keep = window
    if lt then keep = math.max(keep, lt + DAY - now) end
    if tripped and conversion == 'shadow' then
      shadow[#shadow + 1] = rule
    elseif tripped then
      local length = block_ms
      if lt and ll and now - lt < DAY then length = math.min(ll * 2, DAY) end
      length = math.min(length, DAY)
      redis.call('HSET', key, 'bu', now + length, 'lt', now, 'll', length)
      redis.call('HSET', KEYS[9], field, label .. '|' .. (now + length))
      redis.call('PEXPIRE', KEYS[9], DAY)
      keep = DAY
    end
    redis.call('PEXPIRE', key, keep)
    return tripped and conversion ~= 'shadow'
  end
  if counting then
    if breaker(KEYS[6], tonumber(ARGV[17]), 'conversion_country', ARGV[21], ARGV[22]) then return {3, 0, ''} end
    if breaker(KEYS[7], tonumber(ARGV[18]), 'conversion_prefix', ARGV[23], ARGV[24]) then return {4, 0, ''} end
  end

  if not safe then
    local budgets = {
      {KEYS[3], 5, 'global_budget', 5, 8},
      {KEYS[4], 8, 'country_budget', 6, 16},
      {KEYS[5], 11, 'prefix_budget', 7, 32},
    }
    for _, b in ipairs(budgets) do
      local interval, burst, mode = tonumber(ARGV[b[2]]), tonumber(ARGV[b[2] + 1]), ARGV[b[2] + 2]
      if interval > 0 and mode ~= 'off' then
        local new_tat, budget_wait = step(b[1], interval, burst)
        if new_tat then
          takes[#takes + 1] = {b[1], new_tat, b[5]}
        elseif mode == 'shadow' then
          shadow[#shadow + 1] = b[3]
        else
          return {b[4], budget_wait, ''}
        end
      end
    end
  end

  local taken = 0
  for _, take in ipairs(takes) do
    redis.call('SET', take[1], take[2], 'PX', math.max(take[2] - now, 1))
    taken = taken + take[3]
  end
  if counting then
    redis.call('HINCRBY', KEYS[6], 's', 1)
    redis.call('HINCRBY', KEYS[7], 's', 1)
    taken = taken + 64
  end
  return {0, 0, table.concat(shadow, ','), taken}
end
local answer = decide()
answer[4] = answer[4] or 0
redis.call('SET', KEYS[11], answer[1] .. '|' .. answer[2] .. '|' .. answer[4] .. '|' .. answer[3], 'PX', 60000)
return answer
";

/// Gives back what an admitted bind took, its call having never reached AutoShares.
/// KEYS: 1 user, 2 phone, 3 client, 4 global, 5 country, 6 prefix arrival times; 7 country
/// and 8 prefix breaker hashes; 9 this call's answer. ARGV: 1-6 the refill interval (ms) of
/// each quota taken, 0 for one not taken; 7 `1` when the send was counted. Decided once per
/// call, as `BIND_SCRIPT` is.
pub const GIVE_BACK_SCRIPT: &str = r"
if redis.call('GET', KEYS[9]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, 6 do
  local interval = tonumber(ARGV[i])
  local tat = interval > 0 and tonumber(redis.call('GET', KEYS[i]))
  if tat then
    local earlier = tat - interval
    if earlier <= now then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], earlier, 'PX', earlier - now)
    end
  end
end
if ARGV[7] == '1' then
  for i = 7, 8 do
    if tonumber(redis.call('HGET', KEYS[i], 's') or 0) > 0 then
      redis.call('HINCRBY', KEYS[i], 's', -1)
    end
  end
end
redis.call('SET', KEYS[9], '1', 'PX', 60000)
return 0
";

/// A completed binding: KEYS = country and prefix breaker hashes, the safe-list; ARGV =
/// window ms, `1` when `abuse.safe` holds the number, then the safe-list names of the number
/// and its prefixes. A safe-listed number is not counted.
pub const COMPLETION_SCRIPT: &str = r"
if ARGV[2] == '1' then return 0 end
if redis.call('HLEN', KEYS[3]) > 0 then
  for i = 3, #ARGV do
    if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then return 0 end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, key in ipairs({KEYS[1], KEYS[2]}) do
  local ws = tonumber(redis.call('HGET', key, 'ws'))
  if ws and now < ws + tonumber(ARGV[1]) then redis.call('HINCRBY', key, 'c', 1) end
end
return 0
";

/// Operators: KEYS = breaker hash, block list; ARGV = block-list field. Lifts a block and
/// starts its window afresh; answers 1 when there was one.
pub const LIFT_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HDEL', KEYS[2], ARGV[1])
local bu = tonumber(redis.call('HGET', KEYS[1], 'bu'))
if not bu or bu <= now then return 0 end
redis.call('HDEL', KEYS[1], 'bu')
redis.call('HSET', KEYS[1], 'ws', now, 's', 0, 'c', 0)
return 1
";

/// Operators: KEYS = block list. Answers {now ms, field, value, …}.
pub const BLOCKS_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local answer = {tostring(now)}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do answer[#answer + 1] = all[i] end
return answer
";

/// Idempotency: KEYS = record; ARGV = in-flight marker, its ttl ms. Answers the record, or
/// nil after setting the marker.
pub const BEGIN_RECORD_SCRIPT: &str = r"
local record = redis.call('GET', KEYS[1])
if record then return record end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// Idempotency: KEYS = record; ARGV = in-flight marker. Deletes the record if it is still
/// that marker.
pub const ABANDON_RECORD_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
";

/// The user's quota as it stands: KEYS = the user's arrival time. Answers {tat or -1, now}.
pub const QUOTA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {tonumber(redis.call('GET', KEYS[1]) or -1), now}
";

/// Code attempts: KEYS = token, this call's answer; ARGV = max, keep ms, action (begin |
/// refund | used). `begin` answers -1 when used, -2 when
/// exhausted, else the new count. Decided once per call, as `BIND_SCRIPT` is.
pub const ATTEMPT_SCRIPT: &str = r"
local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local function decide()
  local key, max, keep, action = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
  if action == 'used' then
    redis.call('HSET', key, 'used', 1)
    redis.call('PEXPIRE', key, keep)
    return 0
  end
  if action == 'refund' then
    local count = tonumber(redis.call('HGET', key, 'count') or 0)
    if count > 0 then redis.call('HINCRBY', key, 'count', -1) end
    return 0
  end
  if redis.call('HGET', key, 'used') == '1' then return -1 end
  local count = tonumber(redis.call('HGET', key, 'count') or 0)
  if count >= max then return -2 end
  count = redis.call('HINCRBY', key, 'count', 1)
  redis.call('PEXPIRE', key, keep)
  return count
end
local answer = decide()
redis.call('SET', KEYS[2], answer, 'PX', 60000)
return answer
";

/// Readiness: KEYS = a key in the bind's slot. A write on the node that owns the bind's
/// keys, as a bind's script makes: it fails where a bind would (no primary for the slot,
/// a replica, a cluster that is down).
pub const READY_SCRIPT: &str = r"
redis.call('SET', KEYS[1], '1', 'PX', 60000)
return 0
";
