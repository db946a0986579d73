// A directory written as a whole, like AtomicFile for one file: the files go into
// `<dest>.tmp-XXXXXX` beside dest; commit() fsyncs it and puts it in dest's place. Where dest
// already exists (a model directory written earlier) the two are swapped in one atomic
// rename (renameat2 RENAME_EXCHANGE) and the old one is then removed, so at every moment dest
// is either the old directory, whole, or the new one, whole. An existing dest that is a file,
// or a non-empty directory without a config.json (not a model directory), is refused rather
// than replaced. Destroyed without commit(), the temporary directory is removed.
#pragma once
#include <string>

namespace lmq {

class AtomicDir {
 public:
  explicit AtomicDir(std::string dest);  // throws lmq::Error naming dest
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;

  const std::string& path() const { return tmp_; }  // where to write the files
  const std::string& dest() const { return dest_; }
  void commit();

 private:
  std::string dest_, tmp_;
  bool committed_ = false;
};

}  // namespace lmq
