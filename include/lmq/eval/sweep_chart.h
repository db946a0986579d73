// The sweep's picture (sweep.svg): bits per weight against mean KLD (log scale), one labelled point
// per scheme, the Pareto frontier as a line, exactly-lossless schemes in a "0 (lossless)" band under
// the log axis, other tools' points (--reference) as diamonds; under it, decode tokens/s against
// bits per weight with float and int8 activations. Built with lmq/eval/chart.h.
#pragma once
#include "lmq/eval/chart.h"
#include "lmq/eval/sweep.h"

namespace lmq {

// overlaps lists any label the layout could not place clear of the rest (should be empty).
chart::Rendered sweep_chart(const SweepResult& r);

}  // namespace lmq
