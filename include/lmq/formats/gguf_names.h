// The one table between Hugging Face tensor names and llama.cpp's GGUF names
// ("model.layers.3.mlp.down_proj.weight" ↔ "blk.3.ffn_down.weight"): the GGUF loader reads
// it one way, the GGUF writer the other.
#pragma once
#include <optional>
#include <string>

namespace lmq {

// "blk.N.ffn_down.weight" → "model.layers.N.mlp.down_proj.weight" (N decimal, no leading 0);
// nullopt for a name outside the table.
std::optional<std::string> hf_name_of_gguf(const std::string& gguf);
// The other way; nullopt for a name outside the table.
std::optional<std::string> gguf_name_of_hf(const std::string& hf);

}  // namespace lmq
