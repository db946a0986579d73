// SentencePiece's ModelProto (see spm_proto.h), written with proto_wire.h's writer.
#include "lmq/model/spm_proto.h"

#include "proto_wire.h"

namespace lmq {

using proto::Writer;

std::string serialize_spm_model(const SpmModelSpec& spec) {
  Writer model;
  for (const SpmPiece& p : spec.pieces) {
    Writer piece;
    piece.bytes_field(1, p.piece);
    piece.float_field(2, p.score);
    piece.int_field(3, int(p.type));
    model.bytes_field(1, piece.str());
  }
  Writer trainer;
  trainer.int_field(3, spec.bpe ? 2 : 1);
  trainer.bool_field(35, spec.byte_fallback);
  trainer.int_field(40, spec.unk_id);
  trainer.int_field(41, spec.bos_id);
  trainer.int_field(42, spec.eos_id);
  trainer.int_field(43, spec.pad_id);
  model.bytes_field(2, trainer.str());
  Writer norm;
  norm.bytes_field(1, spec.normalizer);
  if (!spec.precompiled_charsmap.empty()) norm.bytes_field(2, spec.precompiled_charsmap);
  norm.bool_field(3, spec.add_dummy_prefix);
  norm.bool_field(4, spec.remove_extra_whitespaces);
  norm.bool_field(5, spec.escape_whitespaces);
  model.bytes_field(3, norm.str());
  return std::move(model.str());
}

}  // namespace lmq
