// Thread priority: background work (folds, writes waiting for a commit, cache warming,
// retraining) gives the cores to requests first.
#ifndef RECLOOP_BASE_THREAD_PRIORITY_H_
#define RECLOOP_BASE_THREAD_PRIORITY_H_

namespace recloop {

// Sets the calling thread's nice value to `nice` (clamped to 0..19; Linux keeps a nice value per
// thread, and threads started afterwards by this one inherit it). Does nothing for nice <= 0 or
// when the thread's value is already `nice`, so that it is cheap to call before each task on a
// pool. A failure (not permitted) is ignored: the thread keeps its priority.
void SetThisThreadNice(int nice);

}  // namespace recloop

#endif  // RECLOOP_BASE_THREAD_PRIORITY_H_
