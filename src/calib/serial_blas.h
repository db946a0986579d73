// OpenBLAS (the pthreads build the project links) keeps its own thread pool beside OpenMP's
// team; when OpenMP regions and multi-threaded BLAS calls alternate on few cores, the idle
// side spins or yields against the busy one (measured: OpenMP's spin-waits and OpenBLAS's
// sched_yield were over a third of the CPU samples of a calibration run on 2 cores). Code that parallelizes with OpenMP and calls BLAS inside its threads holds a
// SerialBlas, so every BLAS call runs in its calling thread; the previous count is restored.
#pragma once
#include <cblas.h>

namespace lmq::calib {

class SerialBlas {
 public:
  SerialBlas() : prev_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~SerialBlas() { openblas_set_num_threads(prev_); }
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  int prev_;
};

}  // namespace lmq::calib
