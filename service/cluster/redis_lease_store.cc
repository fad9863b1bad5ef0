#include "service/cluster/redis_lease_store.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"

namespace fetchd::cluster {
namespace {

// KEYS: leases, tat, pause, wanters, holes.
// ARGV: replica, ttl_us, limit, want, first_seq, interval_us, tolerance_us,
//       want_tokens, horizon_us, pause_us, want_ttl_us, n_hold, n_release,
//       hold seqs..., release seqs..., returned send times (us)...
// Returns: now, granted, reaped, held, wanters, returned, paused_for,
//          token offsets (us from now)...
constexpr char kSyncScript[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local replica = ARGV[1]
local ttl = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local first = tonumber(ARGV[5])
local interval = tonumber(ARGV[6])
local tolerance = tonumber(ARGV[7])
local want_tokens = tonumber(ARGV[8])
local horizon = tonumber(ARGV[9])
local pause = tonumber(ARGV[10])
local want_ttl = tonumber(ARGV[11])
local n_hold = tonumber(ARGV[12])
local n_release = tonumber(ARGV[13])
local ttl_ms = math.ceil(ttl / 1000)
local hold_from = 14
local release_from = hold_from + n_hold
local returned_from = release_from + n_release

local reaped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local expiry = now + ttl
for i = hold_from, release_from - 1 do
  redis.call('ZADD', KEYS[1], expiry, replica .. ':' .. ARGV[i])
end
for i = release_from, returned_from - 1 do
  redis.call('ZREM', KEYS[1], replica .. ':' .. ARGV[i])
end
local granted = 0
if limit > 0 and want > 0 then
  local room = limit - redis.call('ZCARD', KEYS[1])
  if room > 0 then
    granted = math.min(want, room)
    for i = 0, granted - 1 do
      redis.call('ZADD', KEYS[1], expiry,
                 replica .. ':' .. string.format('%d', first + i))
    end
  end
end
local held = redis.call('ZCARD', KEYS[1])
if held > 0 then redis.call('PEXPIRE', KEYS[1], 2 * ttl_ms) end

redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local short = want > granted
if short then
  redis.call('ZADD', KEYS[4], now + want_ttl, replica)
  redis.call('PEXPIRE', KEYS[4], math.ceil(want_ttl / 1000) + 1)
else
  redis.call('ZREM', KEYS[4], replica)
end
local wanters = redis.call('ZCARD', KEYS[4])
if short then wanters = wanters - 1 end

local tokens = {}
local returned = 0
if interval > 0 then
  -- A send time used more than an interval late could break the bound.
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - interval - 1)
  for i = returned_from, #ARGV do
    local send = tonumber(ARGV[i])
    if send >= now - interval then
      redis.call('ZADD', KEYS[5], send,
                 ARGV[i] .. ':' .. replica .. ':' .. i)
      returned = returned + 1
    end
  end
  local last = now + horizon
  if want_tokens > 0 then
    local holes = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', last,
                             'WITHSCORES', 'LIMIT', 0, want_tokens)
    for i = 1, #holes, 2 do
      redis.call('ZREM', KEYS[5], holes[i])
      tokens[#tokens + 1] = tonumber(holes[i + 1]) - now
    end
  end
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  local changed = false
  while #tokens < want_tokens do
    local send = math.max(now, tat - tolerance)
    if send > last then break end
    tokens[#tokens + 1] = send - now
    tat = math.max(tat, send) + interval
    changed = true
  end
  if changed then
    redis.call('SET', KEYS[2], string.format('%d', tat), 'PX',
               math.ceil(math.max(0, tat - now) / 1000) + 1000)
  end
  if redis.call('ZCARD', KEYS[5]) > 0 then
    redis.call('PEXPIRE', KEYS[5], math.ceil(horizon / 1000) + 1000)
  end
end

local nb = tonumber(redis.call('GET', KEYS[3]) or '0')
if pause > 0 and now + pause > nb then
  nb = now + pause
  redis.call('SET', KEYS[3], string.format('%d', nb), 'PX',
             math.ceil(pause / 1000) + 1)
end
local reply = {now, granted, reaped, held, wanters, returned,
               math.max(0, nb - now)}
for i = 1, #tokens do reply[#reply + 1] = tokens[i] end
return reply
)lua";

// KEYS: members, epoch. ARGV: replica, ttl_us, candidate epoch, leaving.
// Returns: live, epoch, learning left (us).
constexpr char kHeartbeatScript[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZCARD', KEYS[1])
local epoch = redis.call('HGET', KEYS[2], 'id')
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[2], 'id', epoch, 'learn_until',
             string.format('%d', now + ttl))
end
local learn = tonumber(redis.call('HGET', KEYS[2], 'learn_until') or '0')
return {live, epoch, math.max(0, learn - now)}
)lua";

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

std::string Str(int64_t v) { return absl::StrCat(v); }

// FailedPrecondition for an error reply (NOAUTH, OOM, a script error),
// Internal for a reply of the wrong shape.
absl::Status BadReply(absl::string_view what, const RedisReply& reply) {
  if (reply.is_error()) {
    return absl::FailedPreconditionError(
        absl::StrCat("redis: ", what, ": ", reply.str));
  }
  return absl::InternalError(
      absl::StrCat("redis: unexpected ", what, " reply"));
}

bool AllIntegers(const RedisReply& reply, size_t min_size) {
  if (reply.type != RedisReply::Type::kArray ||
      reply.elements.size() < min_size) {
    return false;
  }
  for (const RedisReply& e : reply.elements) {
    if (e.type != RedisReply::Type::kInteger) return false;
  }
  return true;
}

}  // namespace

RedisLeaseStore::RedisLeaseStore(const LimiterOptions& options)
    : options_(options),
      connection_(options.redis, options.password, options.connect_timeout,
                  options.command_timeout),
      sync_{kSyncScript, ""},
      heartbeat_{kHeartbeatScript, ""} {}

std::string RedisLeaseStore::HostKey(absl::string_view host_key,
                                     absl::string_view what) const {
  return absl::StrCat(options_.key_prefix, "{", host_key, "}:", what);
}

absl::Status RedisLeaseStore::Load(Script& script) {
  FETCHD_ASSIGN_OR_RETURN(
      RedisReply reply, connection_.Command({"SCRIPT", "LOAD", script.source}));
  if (reply.type != RedisReply::Type::kString) {
    connection_.Close();
    return BadReply("SCRIPT LOAD", reply);
  }
  script.sha = std::move(reply.str);
  return absl::OkStatus();
}

absl::Status RedisLeaseStore::Connect() {
  FETCHD_RETURN_IF_ERROR(connection_.Connect());
  FETCHD_RETURN_IF_ERROR(Load(sync_));
  return Load(heartbeat_);
}

void RedisLeaseStore::Disconnect() { connection_.Close(); }

absl::StatusOr<std::vector<RedisReply>> RedisLeaseStore::Run(
    Script& script, std::vector<RedisCommand>& commands) {
  for (int attempt = 0;; ++attempt) {
    for (RedisCommand& call : commands) call[1] = script.sha;
    FETCHD_ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                            connection_.Pipeline(commands));
    bool noscript = false;
    for (const RedisReply& reply : replies) {
      if (reply.is_error() && absl::StartsWith(reply.str, "NOSCRIPT")) {
        noscript = true;
      }
    }
    if (!noscript) return replies;
    if (attempt > 0) {
      return absl::FailedPreconditionError(
          "redis: NOSCRIPT right after SCRIPT LOAD");
    }
    FETCHD_RETURN_IF_ERROR(Load(script));
  }
}

absl::StatusOr<Membership> RedisLeaseStore::Heartbeat(absl::Duration ttl,
                                                      bool leaving) {
  const std::string candidate =
      absl::StrCat(options_.replica_id, "/", absl::ToUnixMicros(absl::Now()),
                   "/", ++epoch_candidates_);
  std::vector<RedisCommand> commands = {
      {"EVALSHA", "", "2",
       absl::StrCat(options_.key_prefix, "{replicas}:members"),
       absl::StrCat(options_.key_prefix, "{replicas}:epoch"),
       options_.replica_id, Str(Micros(ttl)), candidate, leaving ? "1" : "0"}};
  FETCHD_ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                          Run(heartbeat_, commands));
  const RedisReply& reply = replies.front();
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 3 ||
      reply.elements[0].type != RedisReply::Type::kInteger ||
      reply.elements[1].type != RedisReply::Type::kString ||
      reply.elements[2].type != RedisReply::Type::kInteger) {
    connection_.Close();
    return BadReply("heartbeat", reply);
  }
  Membership out;
  out.live = static_cast<int>(reply.elements[0].integer);
  out.epoch = reply.elements[1].str;
  out.learning_left = absl::Microseconds(reply.elements[2].integer);
  return out;
}

absl::StatusOr<std::vector<HostSyncReply>> RedisLeaseStore::Sync(
    absl::Span<const HostSyncRequest> requests, absl::Duration ttl,
    absl::Duration want_ttl) {
  std::vector<RedisCommand> commands;
  commands.reserve(requests.size());
  for (const HostSyncRequest& r : requests) {
    RedisCommand c = {"EVALSHA",
                      "",
                      "5",
                      HostKey(r.host_key, "leases"),
                      HostKey(r.host_key, "tat"),
                      HostKey(r.host_key, "pause"),
                      HostKey(r.host_key, "wanters"),
                      HostKey(r.host_key, "holes"),
                      options_.replica_id,
                      Str(Micros(ttl)),
                      Str(r.limit),
                      Str(r.want),
                      absl::StrCat(r.first_seq),
                      Str(Micros(r.interval)),
                      Str(Micros(r.tolerance)),
                      Str(r.want_tokens),
                      Str(Micros(r.horizon)),
                      Str(Micros(r.pause)),
                      Str(Micros(want_ttl)),
                      Str(static_cast<int64_t>(r.hold.size())),
                      Str(static_cast<int64_t>(r.release.size()))};
    c.reserve(c.size() + r.hold.size() + r.release.size() + r.returned.size());
    for (uint64_t seq : r.hold) c.push_back(absl::StrCat(seq));
    for (uint64_t seq : r.release) c.push_back(absl::StrCat(seq));
    for (int64_t send : r.returned) c.push_back(Str(send));
    commands.push_back(std::move(c));
  }
  FETCHD_ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                          Run(sync_, commands));
  std::vector<HostSyncReply> out;
  out.reserve(replies.size());
  for (const RedisReply& reply : replies) {
    if (!AllIntegers(reply, 7)) {
      connection_.Close();
      return BadReply("sync", reply);
    }
    const auto& e = reply.elements;
    HostSyncReply r;
    r.store_now = e[0].integer;
    r.granted = static_cast<int>(e[1].integer);
    r.reaped = static_cast<int>(e[2].integer);
    r.held_cluster = static_cast<int>(e[3].integer);
    r.wanters = static_cast<int>(e[4].integer);
    r.returned = static_cast<int>(e[5].integer);
    r.paused_for = absl::Microseconds(e[6].integer);
    r.tokens.reserve(e.size() - 7);
    for (size_t i = 7; i < e.size(); ++i) {
      r.tokens.push_back(absl::Microseconds(e[i].integer));
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace fetchd::cluster
