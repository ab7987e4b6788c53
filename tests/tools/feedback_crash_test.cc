// Crash safety of feedback ingestion, as an operator would see it: `recloop serve` takes
// concurrent POST /v1/feedback batches and is killed with SIGKILL at a random moment; restarted on
// the same event store, it must hold every acknowledged event exactly once, hold nothing that was
// not sent, hold each unacknowledged batch whole or not at all, and not double a batch that a
// client retries after the crash. Real processes, real sockets on 127.0.0.1, real files.
//
// Reproduce a failing run with RECLOOP_CRASH_SEED=<the seed the test prints>.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "data/event_store.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "tests/tools/server_process.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RECLOOP_CRASH_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RECLOOP_CRASH_TEST_SANITIZED 1
#endif
#endif

namespace recloop {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

#ifdef RECLOOP_CRASH_TEST_SANITIZED
constexpr int kRuns = 3;  // every process is several times slower; still several kill points
#else
constexpr int kRuns = 4;
#endif
constexpr int kTotalEvents = 20'000;  // per run, shared by the client threads
constexpr int kClientThreads = 8;
constexpr int kMaxBatch = 100;
// Kill points. The first run kills this many milliseconds (drawn) after the first request, to
// catch the server early; the others kill when the acknowledged events first reach a drawn
// share of kTotalEvents, one stratum of the range per run, so that every run kills while answers
// are flowing whatever the machine's speed (a sanitizer build is several times slower).
constexpr int kEarlyKillMinMs = 50;
constexpr int kEarlyKillMaxMs = 400;
constexpr double kMinKillShare = 0.05;
constexpr double kMaxKillShare = 0.95;
constexpr seconds kTrafficDeadline{120};
using test::Connection;
using test::ReadFile;
using test::ServerProcess;

// One POST /v1/feedback batch and what became of it.
struct Batch {
  std::vector<Event> events;  // every one with a unique id
  std::string body;
  int status = 0;      // 0: no complete answer (unacknowledged)
  std::string answer;  // the response body
};

std::string BatchBody(const std::vector<Event>& events) {
  json array = json::array();
  for (const Event& e : events) {
    array.push_back({{"user", e.user}, {"item", e.item}, {"type", e.type},
                     {"timestamp", e.timestamp}, {"id", e.id}});
  }
  return array.dump();
}

// True if a 200 answer accounts for all `size` events of a batch: accepted, none rejected, and
// `duplicates` of them already stored.
bool AnswerAccounts(const std::string& answer, size_t size, int64_t duplicates) {
  const json j = json::parse(answer, nullptr, false);
  return j.is_object() && j.value("accepted", int64_t{-1}) == static_cast<int64_t>(size) &&
         j.value("duplicates", int64_t{-1}) == duplicates && j.contains("rejected") &&
         j["rejected"].is_array() && j["rejected"].empty();
}

// What the client threads share with the thread that kills the server.
struct Traffic {
  std::atomic<int> reserved{0};  // events handed to batches so far (at most kTotalEvents)
  Clock::time_point deadline;
  std::mutex mu;
  std::condition_variable cv;
  int acked_batches = 0;  // GUARDED_BY(mu)
  int acked_events = 0;   // GUARDED_BY(mu)
  int done_threads = 0;   // GUARDED_BY(mu)
};

// Takes up to `want` events from the shared total; 0 when it is used up.
int Reserve(std::atomic<int>* reserved, int want) {
  int cur = reserved->load();
  while (cur < kTotalEvents) {
    const int take = std::min(want, kTotalEvents - cur);
    if (reserved->compare_exchange_weak(cur, cur + take)) return take;
  }
  return 0;
}

// One client thread: batches of 1..kMaxBatch events over one keep-alive connection until the
// total is sent, the deadline passes or a request gets no complete answer (the server died).
void PostBatches(int port, int thread, uint64_t seed, Traffic* traffic, std::vector<Batch>* out) {
  static const char* const kTypes[] = {"view", "click", "cart", "purchase"};
  std::mt19937_64 rng(seed);
  Connection conn(port);
  int next_id = 0;
  while (Clock::now() < traffic->deadline) {
    const int size = Reserve(&traffic->reserved, 1 + static_cast<int>(rng() % kMaxBatch));
    if (size == 0) break;
    Batch batch;
    for (int i = 0; i < size; ++i) {
      Event e;
      e.user = absl::StrCat("u", rng() % 300);  // known and unknown to the model alike
      e.item = absl::StrCat("i", rng() % 150);
      e.type = kTypes[rng() % 4];
      e.timestamp = 1'700'000'000 + static_cast<int64_t>(rng() % 1'000'000);
      e.id = absl::StrCat("c", thread, "-", next_id++);
      batch.events.push_back(std::move(e));
    }
    batch.body = BatchBody(batch.events);
    conn.Reconnect();
    batch.status = conn.Request("POST", "/v1/feedback", batch.body, &batch.answer);
    const int status = batch.status;
    out->push_back(std::move(batch));
    if (status == 200) {
      std::lock_guard<std::mutex> lock(traffic->mu);
      ++traffic->acked_batches;
      traffic->acked_events += size;
      traffic->cv.notify_all();
    }
    if (status == 0) break;  // the connection failed: the server is gone
  }
  std::lock_guard<std::mutex> lock(traffic->mu);
  ++traffic->done_threads;
  traffic->cv.notify_all();
}

// The event store's contents by event id.
struct StoreContents {
  std::map<std::string, std::vector<Event>> by_id;
  int64_t without_id = 0;
  int64_t rows = 0;
};

// Runs `cmd` through the shell; its exit code, with stdout and stderr in *output.
int RunCommand(const std::string& cmd, const std::string& err_file, std::string* output) {
  FILE* p = popen((cmd + " 2>" + err_file).c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  output->append(ReadFile(err_file));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Examples(const std::vector<std::string>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size() && i < 10; ++i) absl::StrAppend(&s, i ? ", " : "", ids[i]);
  if (ids.size() > 10) absl::StrAppend(&s, ", ... (", ids.size(), " in all)");
  return s;
}

class FeedbackCrash : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    models_ = new std::string(dir_->File("models"));
    std::string output;
    // The smallest demo that trains a servable model quickly.
    const int rc = RunCommand(std::string(RECLOOP_BINARY) +
                                  " demo --quiet --users 200 --items 100 --interactions 3000 "
                                  "--clusters 4 --models " + *models_,
                              dir_->File("demo.err"), &output);
    demo_ok_ = rc == 0;
    if (!demo_ok_) demo_error_ = new std::string(output);
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete models_;
    delete demo_error_;
    dir_ = nullptr;
    models_ = nullptr;
    demo_error_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(demo_ok_) << "recloop demo failed:\n" << *demo_error_; }

  static absl::StatusOr<StoreContents> ReadStore(const std::string& path) {
    auto store = EventStore::Open({path});
    if (!store.ok()) return store.status();
    StoreContents c;
    const absl::Status s = (*store)->ForEach(0, [&c](const StoredEvent& e) {
      ++c.rows;
      if (e.event.id.empty()) {
        ++c.without_id;
      } else {
        c.by_id[e.event.id].push_back(e.event);
      }
      return true;
    });
    if (!s.ok()) return s;
    auto count = (*store)->Count();
    if (!count.ok()) return count.status();
    if (*count != c.rows) {
      return absl::DataLossError(
          absl::StrCat("Count() says ", *count, " but ForEach saw ", c.rows, " events"));
    }
    return c;
  }

  // Per-run bookkeeping for the final report.
  struct RunReport {
    int kill_after_ms = 0;      // run 0: the drawn delay after the first request
    int kill_at_acked = 0;      // other runs: the drawn count of acknowledged events
    int64_t killed_at_ms = 0;   // when the kill came, after the first request
    bool killed_mid_stream = false;
    int acked_batches_at_kill = 0;
    int acked_events_at_kill = 0;
    int64_t sent_events = 0, acked_events = 0, unacked_events = 0, stored_after_crash = 0;
    int unacked_batches = 0, unacked_batches_stored = 0, refused_batches = 0;
    int64_t stored_final = 0;
  };

  static test::TempDir* dir_;
  static std::string* models_;
  static bool demo_ok_;
  static std::string* demo_error_;
};

test::TempDir* FeedbackCrash::dir_ = nullptr;
std::string* FeedbackCrash::models_ = nullptr;
bool FeedbackCrash::demo_ok_ = false;
std::string* FeedbackCrash::demo_error_ = nullptr;

TEST_F(FeedbackCrash, EveryAcknowledgedEventSurvivesSigkillExactlyOnce) {
  uint64_t seed = 20'260'611;
  if (const char* s = std::getenv("RECLOOP_CRASH_SEED"); s != nullptr && *s != '\0') {
    seed = std::strtoull(s, nullptr, 10);
  }
  std::printf("feedback crash test: seed %llu (RECLOOP_CRASH_SEED), %d runs\n",
              static_cast<unsigned long long>(seed), kRuns);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 master(seed);
  int mid_stream_runs = 0;

  for (int run = 0; run < kRuns; ++run) {
    SCOPED_TRACE(absl::StrCat("run ", run, " (seed ", seed, ")"));
    RunReport report;
    if (run == 0) {
      report.kill_after_ms =
          kEarlyKillMinMs + static_cast<int>(master() % (kEarlyKillMaxMs - kEarlyKillMinMs + 1));
    } else {
      const double stratum = (kMaxKillShare - kMinKillShare) / (kRuns - 1);
      const double share = kMinKillShare + stratum * (run - 1) +
                           stratum * std::uniform_real_distribution<double>(0, 1)(master);
      report.kill_at_acked = static_cast<int>(share * kTotalEvents);
    }
    const std::string events_path = dir_->File(absl::StrCat("events-", run, ".db"));

    // 1. Serve, post concurrently, SIGKILL.
    std::vector<std::vector<Batch>> per_thread(kClientThreads);
    {
      ServerProcess server;
      ASSERT_TRUE(
          server.Start(*models_, events_path, dir_->File(absl::StrCat("serve-", run, ".log"))));
      Traffic traffic;
      const auto start = Clock::now();
      traffic.deadline = start + kTrafficDeadline;
      std::vector<std::thread> clients;
      for (int t = 0; t < kClientThreads; ++t) {
        clients.emplace_back(PostBatches, server.port(), t, master(), &traffic, &per_thread[t]);
      }
      {
        std::unique_lock<std::mutex> lock(traffic.mu);
        auto all_done = [&traffic] { return traffic.done_threads == kClientThreads; };
        if (run == 0) {
          traffic.cv.wait_for(lock, milliseconds(report.kill_after_ms), all_done);
        } else {
          traffic.cv.wait_for(lock, kTrafficDeadline, [&] {
            return traffic.acked_events >= report.kill_at_acked || all_done();
          });
        }
        report.killed_mid_stream = !all_done();
        report.acked_batches_at_kill = traffic.acked_batches;
        report.acked_events_at_kill = traffic.acked_events;
      }
      server.Kill();
      report.killed_at_ms =
          std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
      for (std::thread& c : clients) c.join();  // each ends at its first failed request
    }

    std::map<std::string, const Event*> sent;  // every event posted, by id
    std::vector<const Batch*> acked, unacked;
    std::vector<std::string> bad_answers;
    for (const auto& batches : per_thread) {
      for (const Batch& b : batches) {
        for (const Event& e : b.events) sent[e.id] = &e;
        report.sent_events += static_cast<int64_t>(b.events.size());
        if (b.status == 200) {
          acked.push_back(&b);
          report.acked_events += static_cast<int64_t>(b.events.size());
          if (!AnswerAccounts(b.answer, b.events.size(), 0)) bad_answers.push_back(b.answer);
        } else {
          unacked.push_back(&b);
          report.unacked_events += static_cast<int64_t>(b.events.size());
          if (b.status != 0) {
            ++report.refused_batches;
            bad_answers.push_back(absl::StrCat(b.status, " ", b.answer));
          }
        }
      }
    }
    report.unacked_batches = static_cast<int>(unacked.size());
    EXPECT_EQ(sent.size(), static_cast<size_t>(report.sent_events)) << "test bug: ids repeat";
    // Before the kill the server has no reason to refuse or miscount a valid batch.
    EXPECT_TRUE(bad_answers.empty()) << "answers that do not account for their batch: "
                                     << Examples(bad_answers);

    // 2. Restart on the same store: it must open after the crash and be ready.
    ServerProcess server;
    ASSERT_TRUE(server.Start(*models_, events_path,
                             dir_->File(absl::StrCat("serve-", run, "-restart.log"))));
    {
      Connection conn(server.port());
      std::string answer;
      ASSERT_EQ(conn.Request("GET", "/readyz", "", &answer), 200) << answer;
    }

    // 3. The store after the crash (read beside the idle restarted server, as `sqlite3` would).
    ASSERT_OK_AND_ASSIGN(const StoreContents after_crash, ReadStore(events_path));
    report.stored_after_crash = after_crash.rows;
    EXPECT_EQ(after_crash.without_id, 0) << "events without an id, none of which was sent";
    std::vector<std::string> doubled, unknown, altered, lost;
    for (const auto& [id, copies] : after_crash.by_id) {
      if (copies.size() > 1) doubled.push_back(id);
      const auto it = sent.find(id);
      if (it == sent.end()) {
        unknown.push_back(id);
        continue;
      }
      const Event& s = *it->second;
      const Event& c = copies.front();
      if (c.user != s.user || c.item != s.item || c.type != s.type ||
          c.timestamp != s.timestamp || c.value.has_value()) {
        altered.push_back(id);
      }
    }
    for (const Batch* b : acked) {
      for (const Event& e : b->events) {
        if (!after_crash.by_id.contains(e.id)) lost.push_back(e.id);
      }
    }
    EXPECT_TRUE(lost.empty()) << "acknowledged events missing after the crash: " << Examples(lost);
    EXPECT_TRUE(doubled.empty()) << "events stored more than once: " << Examples(doubled);
    EXPECT_TRUE(unknown.empty()) << "stored events that were never sent: " << Examples(unknown);
    EXPECT_TRUE(altered.empty()) << "stored events unlike the ones sent: " << Examples(altered);
    // A batch is stored whole or not at all (one transaction), acknowledged or not.
    std::vector<int64_t> stored_before_retry;
    std::vector<std::string> torn;
    for (const Batch* b : unacked) {
      int64_t present = 0;
      for (const Event& e : b->events) present += after_crash.by_id.contains(e.id) ? 1 : 0;
      if (present != 0 && present != static_cast<int64_t>(b->events.size())) {
        torn.push_back(absl::StrCat(b->events.front().id, ".. (", present, " of ",
                                    b->events.size(), ")"));
      }
      if (present > 0) ++report.unacked_batches_stored;
      stored_before_retry.push_back(present);
    }
    EXPECT_TRUE(torn.empty()) << "unacknowledged batches stored in part: " << Examples(torn);

    // 4. Clients retry their unacknowledged batches: each is then stored exactly once, the part
    // that survived the crash answered as duplicates.
    int64_t newly_stored = 0;
    for (size_t i = 0; i < unacked.size(); ++i) {
      const Batch& b = *unacked[i];
      Connection conn(server.port());
      std::string answer;
      const int status = conn.Request("POST", "/v1/feedback", b.body, &answer);
      EXPECT_EQ(status, 200) << answer;
      EXPECT_TRUE(AnswerAccounts(answer, b.events.size(), stored_before_retry[i]))
          << "retry of the batch from " << b.events.front().id << " (" << b.events.size()
          << " events, " << stored_before_retry[i] << " stored before): " << answer;
      newly_stored += static_cast<int64_t>(b.events.size()) - stored_before_retry[i];
    }
    ASSERT_TRUE(server.Stop());

    // 5. The store at the end: every acknowledged and every retried event, each exactly once.
    ASSERT_OK_AND_ASSIGN(const StoreContents final_store, ReadStore(events_path));
    report.stored_final = final_store.rows;
    EXPECT_EQ(final_store.rows, after_crash.rows + newly_stored);
    std::vector<std::string> not_once;
    for (const auto& batches : per_thread) {
      for (const Batch& b : batches) {
        for (const Event& e : b.events) {
          const auto it = final_store.by_id.find(e.id);
          if (it == final_store.by_id.end() || it->second.size() != 1) not_once.push_back(e.id);
        }
      }
    }
    EXPECT_TRUE(not_once.empty()) << "after the retries, events not stored exactly once: "
                                  << Examples(not_once);
    EXPECT_EQ(final_store.rows, report.sent_events);

    if (report.killed_mid_stream && report.acked_batches_at_kill > 0) ++mid_stream_runs;
    const std::string when =
        run == 0 ? absl::StrCat("drawn: ", report.kill_after_ms, " ms after the first request")
                 : absl::StrCat("drawn: at ", report.kill_at_acked, " acked events");
    std::printf(
        "run %d: SIGKILL at %lld ms (%s; %s, %d events in %d batches acked by then): sent %lld "
        "events, acked %lld (%zu batches), unacked %lld (%d batches, %d of them stored whole, "
        "%d refused); stored after crash %lld, after retries %lld\n",
        run, static_cast<long long>(report.killed_at_ms), when.c_str(),
        report.killed_mid_stream ? "mid-stream" : "after the traffic ended",
        report.acked_events_at_kill, report.acked_batches_at_kill,
        static_cast<long long>(report.sent_events),
        static_cast<long long>(report.acked_events), acked.size(),
        static_cast<long long>(report.unacked_events), report.unacked_batches,
        report.unacked_batches_stored, report.refused_batches,
        static_cast<long long>(report.stored_after_crash),
        static_cast<long long>(report.stored_final));
    std::fflush(stdout);
    const std::string p = absl::StrCat("run", run, "_");
    RecordProperty(p + "killed_at_ms", static_cast<int>(report.killed_at_ms));
    RecordProperty(p + "acked_events", static_cast<int>(report.acked_events));
    RecordProperty(p + "unacked_events", static_cast<int>(report.unacked_events));
    RecordProperty(p + "stored_after_crash", static_cast<int>(report.stored_after_crash));
    RecordProperty(p + "stored_final", static_cast<int>(report.stored_final));
  }
  // Not a failure (timing on a loaded machine decides it), but a run that never killed while
  // answers were flowing proves less: say so.
  if (mid_stream_runs == 0) {
    std::printf("warning: no run killed the server while batches were being acknowledged\n");
  }
  RecordProperty("mid_stream_runs", mid_stream_runs);
}

// --write-nice: the threads that take writes (the blocking thread that ran the POST, the SQLite
// writer, the fold threads) run at that nice value, and the I/O threads, which answer reads, at
// the server's own. Read from /proc after one acknowledged batch.
TEST_F(FeedbackCrash, WritesRunAtTheWriteNiceAndReadsAtTheServersPriority) {
  ServerProcess server;
  ASSERT_TRUE(server.Start(*models_, dir_->File("events-nice.db"), dir_->File("serve-nice.log"),
                           {"--write-nice", "7", "--fold-threads", "2", "--io-threads", "2"}));
  Connection c(server.port());
  std::string answer;
  const std::string body = R"([{"user":"u1","item":"i1","type":"click"}])";
  ASSERT_EQ(c.Request("POST", "/v1/feedback", body, &answer), 200) << answer;
  ASSERT_EQ(c.Request("GET", "/v1/users/u1/recommendations?n=3", "", &answer), 200) << answer;
  std::map<int, int> threads_at;  // nice value -> threads
  const std::string task_dir = absl::StrCat("/proc/", server.pid(), "/task");
  for (const auto& task : std::filesystem::directory_iterator(task_dir)) {
    // /proc/PID/task/TID/stat: "tid (comm) state ..."; nice is the 19th field, the 17th after
    // the command's closing parenthesis.
    const std::string stat = ReadFile(task.path().string() + "/stat");
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 0; i < 17 && rest >> field;) ++i;
    threads_at[std::atoi(field.c_str())]++;
  }
  // The writer, both fold threads and the blocking thread that took the POST.
  EXPECT_GE(threads_at[7], 4) << ReadFile(dir_->File("serve-nice.log"));
  // The main thread and the I/O threads (and the blocking threads that have taken no task yet).
  EXPECT_GE(threads_at[0], 3);
  EXPECT_TRUE(server.Stop());
}

}  // namespace
}  // namespace recloop
