// `mpiexec -np P recloop train --distributed`, run as a data team would run it: the model it
// writes is served like any other, and a dead rank or a malformed shard stops the job with a
// message naming the rank, without a hang and without touching the current model.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>
#include <string>

#include "data/reader.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "tests/tools/cli_runner.h"

namespace recloop {
namespace {

using test::CliResult;

class DistributedCli : public ::testing::Test {
 protected:
  CliResult Run(const std::string& args) {
    return test::RunRecloop(args, dir_.File("stderr.txt"));
  }
  // `mpiexec -np RANKS MPI_OPTIONS recloop ARGS`, given up on after 5 minutes (a hang fails the
  // test).
  CliResult RunMpi(int ranks, const std::string& args, const std::string& env = "",
                   const std::string& mpi_options = "") {
    // RECLOOP_MPI_ENV: the sanitizer settings of MPI processes (tests/CMakeLists.txt).
    return test::RunShell(env + " " RECLOOP_MPI_ENV " timeout 300 " RECLOOP_MPIEXEC " -np " +
                              std::to_string(ranks) + " " + mpi_options + " " +
                              std::string(RECLOOP_BINARY) + " " + args,
                          dir_.File("stderr.txt"));
  }
  // The same job on two hosts named by a hostfile, as README's many-host command runs it:
  // mpirun starts a daemon per host through its ssh agent (here tests/tools/local_ssh.sh, which
  // runs it on this machine) and the processes exchange over TCP, kept to loopback. Each daemon
  // maps the topology into shared memory at an address of its choosing; two daemons on one
  // machine occasionally collide there (a crash in hwloc_shmem_topology_write, 1 in 15 launches
  // here), which `rtc_hwloc_vmhole none` turns off. Separate machines do not need it.
  CliResult RunOnTwoHosts(const std::string& args, const std::string& env = "") {
    const std::string hosts = dir_.File("hosts");
    std::ofstream(hosts) << "recloop-node-a slots=1\nrecloop-node-b slots=1\n";
    return RunMpi(2, args, env,
                  "--hostfile " + hosts +
                      " --bind-to none --display-map --mca plm_rsh_agent " RECLOOP_LOCAL_SSH
                      " --mca rtc_hwloc_vmhole none --mca oob_tcp_if_include lo"
                      " --mca btl tcp,self --mca btl_tcp_if_include lo");
  }
  // A training run with a held-out file and --json, to compare with one process.
  std::string CompareArgs() const {
    return "train --algorithm als --factors 16 --iterations 6 --data " + train_ + " --test " +
           test_ + " --json --quiet";
  }
  std::string Current(const std::string& models) {
    std::error_code ec;
    return std::filesystem::read_symlink(models + "/current", ec).string();
  }

  void SetUp() override {
    train_ = dir_.File("train.csv");
    test_ = dir_.File("test.csv");
    ASSERT_EQ(Run("generate --users 300 --items 120 --interactions 6000 --seed 1 --out " + train_)
                  .exit_code,
              0);
    ASSERT_EQ(Run("generate --users 300 --items 120 --interactions 1500 --seed 2 --out " + test_)
                  .exit_code,
              0);
  }

  test::TempDir dir_;
  std::string train_, test_;
};

TEST_F(DistributedCli, TwoRanksWriteAModelThatIsServedAndScoresAsOneProcess) {
  const std::string models = dir_.File("models");
  const std::string common = CompareArgs();
  CliResult single = Run(common);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  CliResult r = RunMpi(2, common + " --distributed --out " + models);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json d = test::LastJsonLine(r.out);
  const nlohmann::json s = test::LastJsonLine(single.out);
  EXPECT_NEAR(d["rmse"].get<double>(), s["rmse"].get<double>(), 1e-4);
  EXPECT_NEAR(d["ndcg@10"].get<double>(), s["ndcg@10"].get<double>(), 1e-3);
  EXPECT_EQ(d["users"], s["users"]);
  EXPECT_EQ(d["distributed"]["ranks"], 2);
  EXPECT_EQ(d["distributed"]["exchange"], "block");
  EXPECT_EQ(d["distributed"]["iterations"].size(), 6u);
  EXPECT_EQ(d["model_version"], "v000001");

  // Written as a single-process run writes it: it loads, carries its lineage and is served.
  absl::StatusOr<FactorModel> model = LoadModel(models);
  ASSERT_OK(model);
  EXPECT_EQ(model->params.algorithm, Algorithm::kAls);
  EXPECT_EQ(model->params.factors, 16);
  EXPECT_EQ(model->params.iterations, 6);
  EXPECT_GT(model->num_users(), 250);
  EXPECT_EQ(model->lineage.train_interactions, model->seen.nnz());
  EXPECT_NEAR(model->lineage.metrics.at("rmse"), d["rmse"].get<double>(), 1e-12);
  EXPECT_TRUE(std::filesystem::exists(models + "/current/items.faiss"));
  // Its seen matrix, streamed from both processes, holds every training row.
  absl::StatusOr<Interactions> rows = ReadInteractions(train_, ReadOptions());
  ASSERT_OK(rows);
  EXPECT_EQ(model->seen.nnz(), rows->size());
  for (int64_t k = 0; k < rows->size(); ++k) {
    const std::optional<int32_t> u = model->users.Find(rows->users.External(rows->user[k]));
    const std::optional<int32_t> i = model->items.Find(rows->items.External(rows->item[k]));
    ASSERT_TRUE(u && i);
    ASSERT_TRUE(model->seen.Contains(*u, *i));
  }
  r = Run("recommend --model " + models + " --user u3 --n 5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json recs = nlohmann::json::parse(r.out);
  ASSERT_EQ(recs["items"].size(), 5u);
  EXPECT_EQ(recs["items"][0]["source"], "personalized");
}

TEST_F(DistributedCli, ADeadRankStopsTheJobAndTheCurrentModelStays) {
  const std::string models = dir_.File("models");
  const std::string args = "train --distributed --algorithm als --factors 8 --iterations 4 "
                           "--quiet --data " + train_ + " --out " + models;
  CliResult r = RunMpi(2, args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Current(models), "v000001");
  // Rank 1 is killed (SIGKILL) at the start of iteration 2, while rank 0 waits for its rows.
  r = RunMpi(2, args, "RECLOOP_TEST_KILL_RANK=1:2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "the job hung until timeout killed it";
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("signal 9"), std::string::npos) << r.err;
  EXPECT_EQ(Current(models), "v000001");
  EXPECT_FALSE(std::filesystem::exists(models + "/v000002"));
}

TEST_F(DistributedCli, TwoHostsOfAHostfileTrainOverTcpTheModelOfOneProcess) {
  const std::string models = dir_.File("models");
  const std::string common = CompareArgs();
  CliResult single = Run(common);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  CliResult r = RunOnTwoHosts(common + " --distributed --out " + models);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // mpirun's map: one process on each host of the hostfile.
  EXPECT_NE(r.out.find("Data for node: recloop-node-a\tNum slots: 1\tMax slots: 0\tNum procs: 1"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Data for node: recloop-node-b\tNum slots: 1\tMax slots: 0\tNum procs: 1"),
            std::string::npos)
      << r.out;
  const nlohmann::json d = test::LastJsonLine(r.out);
  const nlohmann::json s = test::LastJsonLine(single.out);
  EXPECT_EQ(d["distributed"]["ranks"], 2);
  EXPECT_NEAR(d["rmse"].get<double>(), s["rmse"].get<double>(), 1e-4);
  EXPECT_NEAR(d["ndcg@10"].get<double>(), s["ndcg@10"].get<double>(), 1e-3);
  EXPECT_EQ(d["users"], s["users"]);
  // Process 1's rows crossed the TCP connection: the bytes it sent are counted.
  for (const nlohmann::json& it : d["distributed"]["iterations"]) {
    EXPECT_GT(it["max_bytes_sent"].get<int64_t>(), 0);
  }
  EXPECT_EQ(Current(models), "v000001");
  absl::StatusOr<FactorModel> model = LoadModel(models);
  ASSERT_OK(model);
  EXPECT_EQ(model->lineage.train_interactions, model->seen.nnz());

  // A process that dies on the second host stops the job, named; the model stays.
  r = RunOnTwoHosts("train --distributed --algorithm als --factors 8 --iterations 4 --quiet "
                    "--data " + train_ + " --out " + models,
                    "RECLOOP_TEST_KILL_RANK=1:2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "the job hung until timeout killed it";
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("recloop-node-b"), std::string::npos) << r.err;
  EXPECT_EQ(Current(models), "v000001");
}

TEST_F(DistributedCli, AMalformedShardStopsTheJobNamingRankFileAndLine) {
  const std::string models = dir_.File("models");
  CliResult r = RunMpi(2, "train --distributed --algorithm als --factors 8 --iterations 2 "
                          "--quiet --data " + train_ + " --out " + models);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The line after the generated rows: the second rank's.
  const std::string bad = dir_.File("bad.csv");
  std::filesystem::copy_file(train_, bad);
  const std::string text = test::ReadWholeFile(bad);
  const int64_t bad_line = std::count(text.begin(), text.end(), '\n') + 1;
  { std::ofstream(bad, std::ios::app) << "u1,i1,9,notatime\nu2,i2,3,0\n"; }
  r = RunMpi(2, "train --distributed --algorithm als --factors 8 --iterations 2 --quiet --data " +
                    bad + " --out " + models);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("recloop: rank 1: " + bad + ":" + std::to_string(bad_line) +
                       ": bad timestamp"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(Current(models), "v000001");
  EXPECT_FALSE(std::filesystem::exists(models + "/v000002"));
}

TEST_F(DistributedCli, OptionsItCannotHonourAreRefusedByName) {
  const std::pair<std::string, std::string> cases[] = {
      {"--split random:0.2", "--split"}, {"--algorithm bpmf", "bpmf"}, {"--exchange ring", "ring"}};
  for (const auto& [extra, named] : cases) {
    CliResult r = RunMpi(2, "train --distributed --quiet --data " + train_ + " " + extra);
    EXPECT_EQ(r.exit_code, 1) << extra;
    EXPECT_NE(r.err.find("recloop: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace recloop
