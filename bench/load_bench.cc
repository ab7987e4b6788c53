// Loading an interactions file and building the training matrices (CSR by user and by item):
// wall seconds and peak resident memory. A separate program so that its peak memory is its own.
//
//   build/tools/recloop generate --users 138000 --items 27000 --interactions 20000000
//       --out /tmp/ml20m-shape.csv
//   build/bench/load_bench /tmp/ml20m-shape.csv
//
// Prints one line per repetition and the median; peak RSS is getrusage's ru_maxrss (it includes
// the pages of the memory-mapped input file).
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "data/reader.h"

namespace {

// Resident set size now, from /proc/self/statm (pages).
double CurrentRssMb() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * 4096.0 / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: load_bench FILE [repetitions]\n");
    return 2;
  }
  const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 3;
  std::vector<double> read_s, csr_s;
  int64_t nnz = 0;
  size_t csr_bytes = 0;
  double loaded_rss_mb = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    auto data = recloop::ReadInteractions(argv[1], recloop::ReadOptions{});
    if (!data.ok()) {
      std::fprintf(stderr, "%s\n", std::string(data.status().message()).c_str());
      return 1;
    }
    const auto t1 = std::chrono::steady_clock::now();
    recloop::CsrMatrix by_user = data->ToUserItemMatrix();
    recloop::CsrMatrix by_item = by_user.Transpose();
    const auto t2 = std::chrono::steady_clock::now();
    nnz = by_user.nnz();
    // Steady state once loaded: the interaction list is dropped, the two matrices stay.
    data = recloop::Interactions{};
    malloc_trim(0);
    loaded_rss_mb = CurrentRssMb();
    csr_bytes = by_user.MemoryBytes() + by_item.MemoryBytes();
    read_s.push_back(std::chrono::duration<double>(t1 - t0).count());
    csr_s.push_back(std::chrono::duration<double>(t2 - t1).count());
    std::printf("rep %d: read %.2f s, build CSR (both ways) %.2f s\n", r + 1, read_s.back(),
                csr_s.back());
  }
  std::sort(read_s.begin(), read_s.end());
  std::sort(csr_s.begin(), csr_s.end());
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("interactions %lld\nmedian read %.2f s\nmedian csr %.2f s\n",
              static_cast<long long>(nnz), read_s[reps / 2], csr_s[reps / 2]);
  std::printf("csr bytes (both ways) %.1f MB = %.2f bytes/interaction\n", csr_bytes / 1e6,
              static_cast<double>(csr_bytes) / nnz);
  std::printf("rss once loaded (both CSRs, list dropped) %.1f MB = %.1f bytes/interaction\n",
              loaded_rss_mb, loaded_rss_mb * 1e6 / nnz);
  std::printf("peak rss %.1f MB = %.1f bytes/interaction\n", usage.ru_maxrss / 1024.0,
              usage.ru_maxrss * 1024.0 / nnz);
  return 0;
}
