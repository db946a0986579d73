/* Streaming read bandwidth (scripts/bench-scale.sh): the best of 20 passes summing a 1 GiB
 * buffer of 64-bit words with THREADS OpenMP threads, in GB/s. Decode of a model much larger
 * than the caches reads each weight once per token, so this is its bound: bandwidth ÷ bytes.
 * cc -O2 -fopenmp scripts/read-bandwidth.c -o read-bandwidth && OMP_NUM_THREADS=2 ./read-bandwidth */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  const size_t n = ((size_t)1 << 30) / sizeof(uint64_t);
  uint64_t* buf = malloc(n * sizeof(uint64_t));
  if (!buf) return 1;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < 20; ++r) {
    const double t0 = omp_get_wtime();
    uint64_t s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; ++i) s += buf[i];
    const double gb_s = (double)(n * sizeof(uint64_t)) / (omp_get_wtime() - t0) / 1e9;
    sink += s;
    if (gb_s > best) best = gb_s;
  }
  printf("%.2f\n", best);
  free(buf);
  return 0;
}
