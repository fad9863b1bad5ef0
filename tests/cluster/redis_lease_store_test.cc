// RedisLeaseStore against a real redis-server (Debian's, started by the
// test on a unix socket or a loopback port, no persistence): the scripts'
// lease, rate, pause and membership rules, NOSCRIPT recovery, and the
// error kinds of a dead, paused or password-protected server.
#include "service/cluster/redis_lease_store.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/cluster/limiter_observer.h"
#include "service/cluster/redis_connection.h"
#include "tests/testing/redis_server.h"

namespace fetchd::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

constexpr absl::Duration kTtl = absl::Seconds(10);
constexpr absl::Duration kWantTtl = absl::Milliseconds(500);

class RedisLeaseStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.Start().ok()); }

  LimiterOptions Options(const std::string& replica) const {
    LimiterOptions o;
    o.redis.unix_path = redis_.socket_path();
    o.replica_id = replica;
    o.command_timeout = absl::Milliseconds(200);
    return o;
  }

  RedisReply Raw(const RedisCommand& command) {
    RedisConnection c(RedisAddress{"", 0, redis_.socket_path()}, "",
                      absl::Seconds(1), absl::Seconds(1));
    EXPECT_TRUE(c.Connect().ok());
    absl::StatusOr<RedisReply> reply = c.Command(command);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *reply : RedisReply{};
  }

  static HostSyncRequest Want(const std::string& host, int limit, int want,
                              uint64_t first_seq) {
    HostSyncRequest r;
    r.host_key = host;
    r.limit = limit;
    r.want = want;
    r.first_seq = first_seq;
    return r;
  }

  static HostSyncReply SyncOne(RedisLeaseStore& store,
                               const HostSyncRequest& request) {
    absl::StatusOr<std::vector<HostSyncReply>> replies =
        store.Sync({request}, kTtl, kWantTtl);
    EXPECT_TRUE(replies.ok()) << replies.status();
    if (!replies.ok() || replies->size() != 1) return HostSyncReply{};
    return replies->front();
  }

  testing::RedisServer redis_;
};

TEST_F(RedisLeaseStoreTest, LeasesAreGrantedWithinTheLimitAcrossReplicas) {
  RedisLeaseStore a(Options("a"));
  RedisLeaseStore b(Options("b"));
  ASSERT_TRUE(a.Connect().ok());
  ASSERT_TRUE(b.Connect().ok());
  const std::string host = "http://127.0.0.1:8080";

  HostSyncReply got = SyncOne(a, Want(host, 5, 3, 1));
  EXPECT_EQ(got.granted, 3);
  EXPECT_EQ(got.held_cluster, 3);
  EXPECT_EQ(got.wanters, 0);
  // b asks for 4 but only 2 are left: it is short, and a sees it.
  got = SyncOne(b, Want(host, 5, 4, 1));
  EXPECT_EQ(got.granted, 2);
  EXPECT_EQ(got.held_cluster, 5);
  HostSyncRequest renew = Want(host, 5, 0, 0);
  renew.hold = {1, 2, 3};
  got = SyncOne(a, renew);
  EXPECT_EQ(got.granted, 0);
  EXPECT_EQ(got.held_cluster, 5);
  EXPECT_EQ(got.wanters, 1);
  // a gives two back; b gets them.
  HostSyncRequest release = Want(host, 5, 0, 0);
  release.hold = {1};
  release.release = {2, 3};
  EXPECT_EQ(SyncOne(a, release).held_cluster, 3);
  HostSyncRequest more = Want(host, 5, 2, 3);
  more.hold = {1, 2};
  got = SyncOne(b, more);
  EXPECT_EQ(got.granted, 2);
  EXPECT_EQ(got.held_cluster, 5);
  EXPECT_EQ(Raw({"ZCARD", a.HostKey(host, "leases")}).integer, 5);
  EXPECT_EQ(Raw({"ZSCORE", a.HostKey(host, "leases"), "b:4"}).type,
            RedisReply::Type::kString);
}

TEST_F(RedisLeaseStoreTest, ExpiredLeasesAreReapedAndHeldOnesAddedBack) {
  RedisLeaseStore a(Options("a"));
  ASSERT_TRUE(a.Connect().ok());
  const std::string host = "http://h:1";
  ASSERT_EQ(SyncOne(a, Want(host, 4, 2, 1)).granted, 2);
  // Another replica's lease that expired long ago, and one of a's lost.
  Raw({"ZADD", a.HostKey(host, "leases"), "1", "dead:7"});
  Raw({"ZREM", a.HostKey(host, "leases"), "a:2"});
  HostSyncRequest renew = Want(host, 4, 0, 0);
  renew.hold = {1, 2};
  const HostSyncReply got = SyncOne(a, renew);
  EXPECT_EQ(got.reaped, 1);
  // a:2 is in use: it is added back, not lost.
  EXPECT_EQ(got.held_cluster, 2);
  EXPECT_EQ(Raw({"ZSCORE", a.HostKey(host, "leases"), "a:2"}).type,
            RedisReply::Type::kString);
}

TEST_F(RedisLeaseStoreTest, AdoptedLeasesMayExceedTheLimitButGrantNothing) {
  RedisLeaseStore a(Options("a"));
  RedisLeaseStore b(Options("b"));
  ASSERT_TRUE(a.Connect().ok());
  ASSERT_TRUE(b.Connect().ok());
  const std::string host = "http://h:1";
  HostSyncRequest adopt = Want(host, 2, 0, 0);
  adopt.hold = {1, 2, 3};
  EXPECT_EQ(SyncOne(a, adopt).held_cluster, 3);
  const HostSyncReply got = SyncOne(b, Want(host, 2, 1, 1));
  EXPECT_EQ(got.granted, 0);
  EXPECT_EQ(got.held_cluster, 3);
}

TEST_F(RedisLeaseStoreTest, SendTimesFollowTheRateAndBurstWithinTheHorizon) {
  RedisLeaseStore a(Options("a"));
  RedisLeaseStore b(Options("b"));
  ASSERT_TRUE(a.Connect().ok());
  ASSERT_TRUE(b.Connect().ok());
  const std::string host = "http://r:1";
  HostSyncRequest r;
  r.host_key = host;
  r.interval = absl::Milliseconds(100);  // 10/s
  r.tolerance = 2 * r.interval;          // burst 3
  r.want_tokens = 100;
  r.horizon = absl::Milliseconds(450);
  HostSyncReply got = SyncOne(a, r);
  // A burst of 3 now, then one per 100 ms up to 450 ms ahead.
  ASSERT_THAT(got.tokens, SizeIs(7));
  EXPECT_EQ(got.tokens[0], absl::ZeroDuration());
  EXPECT_EQ(got.tokens[2], absl::ZeroDuration());
  EXPECT_EQ(got.tokens[3], absl::Milliseconds(100));
  EXPECT_EQ(got.tokens[6], absl::Milliseconds(400));
  // b's reservation comes after a's: 3 at once and 4 more took a's burst
  // and 400 ms, so b's first is 500 ms after a's now.
  r.horizon = absl::Seconds(1);
  got = SyncOne(b, r);
  ASSERT_FALSE(got.tokens.empty());
  EXPECT_GE(got.tokens.front(), absl::Milliseconds(400));
  // b gives its send times back (in the store's clock): the next one to ask
  // gets them first, in order, before new ones.
  HostSyncRequest give_back = r;
  give_back.want_tokens = 0;
  for (absl::Duration offset : got.tokens) {
    give_back.returned.push_back(got.store_now +
                                 absl::ToInt64Microseconds(offset));
  }
  const HostSyncReply returned = SyncOne(b, give_back);
  EXPECT_EQ(returned.returned, static_cast<int>(got.tokens.size()));
  EXPECT_THAT(returned.tokens, SizeIs(0));
  r.want_tokens = 2;
  const HostSyncReply again = SyncOne(a, r);
  ASSERT_THAT(again.tokens, SizeIs(2));
  EXPECT_EQ(again.store_now + absl::ToInt64Microseconds(again.tokens[0]),
            give_back.returned[0]);
  EXPECT_EQ(again.store_now + absl::ToInt64Microseconds(again.tokens[1]),
            give_back.returned[1]);
  // A send time given back too late for anyone is not kept.
  HostSyncRequest stale = r;
  stale.want_tokens = 0;
  stale.returned = {again.store_now - 1000000};
  EXPECT_EQ(SyncOne(a, stale).returned, 0);
}

TEST_F(RedisLeaseStoreTest, APauseOnlyMovesForward) {
  RedisLeaseStore a(Options("a"));
  RedisLeaseStore b(Options("b"));
  ASSERT_TRUE(a.Connect().ok());
  ASSERT_TRUE(b.Connect().ok());
  const std::string host = "http://p:1";
  HostSyncRequest pause;
  pause.host_key = host;
  pause.pause = absl::Seconds(30);
  EXPECT_GT(SyncOne(a, pause).paused_for, absl::Seconds(29));
  HostSyncRequest shorter = pause;
  shorter.pause = absl::Seconds(2);
  EXPECT_GT(SyncOne(b, shorter).paused_for, absl::Seconds(29));
  HostSyncRequest read;
  read.host_key = host;
  EXPECT_GT(SyncOne(b, read).paused_for, absl::Seconds(29));
  read.host_key = "http://other:1";
  EXPECT_EQ(SyncOne(b, read).paused_for, absl::ZeroDuration());
}

TEST_F(RedisLeaseStoreTest, HeartbeatsCountLiveReplicasAndKeepTheEpoch) {
  RedisLeaseStore a(Options("a"));
  RedisLeaseStore b(Options("b"));
  ASSERT_TRUE(a.Connect().ok());
  ASSERT_TRUE(b.Connect().ok());
  absl::StatusOr<Membership> ma = a.Heartbeat(kTtl, false);
  ASSERT_TRUE(ma.ok()) << ma.status();
  EXPECT_EQ(ma->live, 1);
  // A new epoch: one TTL of learning.
  EXPECT_GT(ma->learning_left, kTtl - absl::Seconds(1));
  absl::StatusOr<Membership> mb = b.Heartbeat(kTtl, false);
  ASSERT_TRUE(mb.ok());
  EXPECT_EQ(mb->live, 2);
  EXPECT_EQ(mb->epoch, ma->epoch);
  mb = b.Heartbeat(kTtl, /*leaving=*/true);
  ASSERT_TRUE(mb.ok());
  EXPECT_EQ(mb->live, 1);
  // A restart without persistence loses the epoch: a new one.
  redis_.Kill();
  ASSERT_TRUE(redis_.Start().ok());
  EXPECT_FALSE(a.Heartbeat(kTtl, false).ok());
  ASSERT_TRUE(a.Connect().ok());
  absl::StatusOr<Membership> after = a.Heartbeat(kTtl, false);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE(after->epoch, ma->epoch);
}

TEST_F(RedisLeaseStoreTest, ScriptsAreLoadedAgainAfterAFlush) {
  RedisLeaseStore a(Options("a"));
  ASSERT_TRUE(a.Connect().ok());
  EXPECT_EQ(Raw({"SCRIPT", "FLUSH"}).type, RedisReply::Type::kStatus);
  EXPECT_EQ(SyncOne(a, Want("http://h:1", 3, 2, 1)).granted, 2);
  EXPECT_TRUE(a.Heartbeat(kTtl, false).ok());
}

TEST_F(RedisLeaseStoreTest, ErrorsSayTimeoutOrConnection) {
  RedisLeaseStore a(Options("a"));
  ASSERT_TRUE(a.Connect().ok());
  // A paused server: the call gives up after the command timeout.
  Raw({"CLIENT", "PAUSE", "1000"});
  absl::StatusOr<Membership> paused = a.Heartbeat(kTtl, false);
  ASSERT_FALSE(paused.ok());
  EXPECT_STREQ(RedisErrorKind(paused.status()), "timeout") << paused.status();
  redis_.Kill();
  absl::Status dead = a.Connect();
  ASSERT_FALSE(dead.ok());
  EXPECT_STREQ(RedisErrorKind(dead), "connection") << dead;
}

TEST(RedisLeaseStoreTcpTest, ConnectsOverTcpWithAPassword) {
  testing::RedisServer redis(/*tcp=*/true);
  ASSERT_TRUE(redis.Start().ok());
  {
    RedisConnection admin(RedisAddress{"127.0.0.1", redis.port(), ""}, "",
                          absl::Seconds(1), absl::Seconds(1));
    ASSERT_TRUE(admin.Connect().ok());
    ASSERT_TRUE(admin.Command({"CONFIG", "SET", "requirepass", "s3cret"}).ok());
  }
  LimiterOptions o;
  o.redis = RedisAddress{"127.0.0.1", redis.port(), ""};
  o.replica_id = "a";
  RedisLeaseStore refused(o);
  const absl::Status no_password = refused.Connect();
  ASSERT_FALSE(no_password.ok());
  EXPECT_STREQ(RedisErrorKind(no_password), "reply") << no_password;
  o.password = "wrong";
  RedisLeaseStore wrong(o);
  EXPECT_EQ(wrong.Connect().code(), absl::StatusCode::kPermissionDenied);
  o.password = "s3cret";
  RedisLeaseStore ok(o);
  ASSERT_TRUE(ok.Connect().ok());
  EXPECT_TRUE(ok.Heartbeat(kTtl, false).ok());
}

}  // namespace
}  // namespace fetchd::cluster
