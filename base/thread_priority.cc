#include "base/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

namespace recloop {

void SetThisThreadNice(int nice) {
  if (nice <= 0) return;
  nice = std::min(nice, 19);
  thread_local int set = 0;  // what this function last set on this thread
  if (set == nice) return;
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice);
  set = nice;
}

}  // namespace recloop
