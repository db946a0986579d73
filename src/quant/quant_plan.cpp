#include "lmq/quant/quant_plan.h"

#include "lmq/error.h"

namespace lmq {

std::vector<uint8_t>& PlanBytes::held() {
  LMQ_CHECK(!file_, "the plan's bytes were moved to the spill file");
  return held_;
}

const std::vector<uint8_t>& PlanBytes::held() const {
  LMQ_CHECK(!file_, "the plan's bytes were moved to the spill file");
  return held_;
}

std::vector<uint8_t> PlanBytes::read() const {
  if (!file_) return held_;
  std::vector<uint8_t> out(size_t(extent_.size));
  file_->read(extent_, out.data());
  return out;
}

void PlanBytes::spill(const std::shared_ptr<SpillFile>& file) {
  if (!file || file_ || held_.empty()) return;
  extent_ = file->append(held_.data(), held_.size());
  file_ = file;
  std::vector<uint8_t>().swap(held_);  // the memory itself goes back, not just the size
}

PlanBytes& PlanBytes::operator=(std::vector<uint8_t> v) {
  held_ = std::move(v);
  file_.reset();
  extent_ = {};
  return *this;
}

}  // namespace lmq
