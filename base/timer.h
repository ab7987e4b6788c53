// Wall-clock timing of a phase (reading, training, a retrain), on the monotonic clock.
#ifndef RECLOOP_BASE_TIMER_H_
#define RECLOOP_BASE_TIMER_H_

#include <chrono>

namespace recloop {

using SteadyClock = std::chrono::steady_clock;

// Seconds elapsed on the steady clock since `start`. Thread-safe.
inline double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// Measures from construction (or the last Restart). Not thread-safe; copyable.
class Timer {
 public:
  Timer() : start_(SteadyClock::now()) {}
  double Seconds() const { return SecondsSince(start_); }
  void Restart() { start_ = SteadyClock::now(); }
  SteadyClock::time_point start() const { return start_; }

 private:
  SteadyClock::time_point start_;
};

}  // namespace recloop

#endif  // RECLOOP_BASE_TIMER_H_
