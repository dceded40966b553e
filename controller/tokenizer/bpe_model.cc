#include "controller/tokenizer/bpe_model.h"

#include <queue>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/status.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {
namespace {

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581

// Ids above this are certainly a corrupt file, and would make the id table absurdly large.
constexpr int64_t kMaxId = 1 << 24;

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const Json& model) {
  const std::string where = "model";
  std::unique_ptr<BpeModel> bpe(new BpeModel());
  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    return absl::InvalidArgumentError("model.vocab must be an object of token -> id");
  }
  LOOM_RETURN_IF_ERROR(bpe->LoadVocab(*vocab));
  LOOM_ASSIGN_OR_RETURN(bpe->continuing_subword_prefix_,
                        JsonString(model, "continuing_subword_prefix", TokenizerPlace(where), ""));
  LOOM_ASSIGN_OR_RETURN(bpe->end_of_word_suffix_,
                        JsonString(model, "end_of_word_suffix", TokenizerPlace(where), ""));
  LOOM_ASSIGN_OR_RETURN(bpe->fuse_unk_, JsonBool(model, "fuse_unk", TokenizerPlace(where), false));
  LOOM_ASSIGN_OR_RETURN(bpe->byte_fallback_,
                        JsonBool(model, "byte_fallback", TokenizerPlace(where), false));
  LOOM_ASSIGN_OR_RETURN(bpe->ignore_merges_,
                        JsonBool(model, "ignore_merges", TokenizerPlace(where), false));
  if (auto unk = model.find("unk_token"); unk != model.end() && !unk->is_null()) {
    if (!unk->is_string()) return absl::InvalidArgumentError("model.unk_token must be a string");
    bpe->unk_token_ = unk->get<std::string>();
  }
  if (auto dropout = model.find("dropout"); dropout != model.end() && !dropout->is_null()) {
    // Dropout makes encoding random; a server must be deterministic.
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      return absl::UnimplementedError("unsupported BPE dropout (only null or 0 is served)");
    }
  }
  auto merges = model.find("merges");
  if (merges != model.end() && !merges->is_null()) {
    if (!merges->is_array()) return absl::InvalidArgumentError("model.merges must be an array");
    LOOM_RETURN_IF_ERROR(bpe->LoadMerges(*merges));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = bpe->vocab_.find(absl::StrFormat("<0x%02X>", b));
    bpe->byte_ids_[b] = it == bpe->vocab_.end() ? -1 : it->second;
  }
  bpe->segment_at_metaspace_ = bpe->MergesNeverCrossMetaspace();
  return bpe;
}

absl::Status BpeModel::LoadVocab(const Json& vocab) {
  vocab_.reserve(vocab.size());
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.vocab[\"", it.key(), "\"] must be an integer id"));
    }
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id > kMaxId) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.vocab[\"", it.key(), "\"] has id ", id, " out of range"));
    }
    vocab_[it.key()] = static_cast<int32_t>(id);
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(max_id + 1, std::string());
  has_id_.assign(max_id + 1, false);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[id] = token;
    has_id_[id] = true;
  }
  return absl::OkStatus();
}

absl::Status BpeModel::LoadMerges(const Json& merges) {
  merges_.reserve(merges.size());
  int32_t rank = 0;
  for (size_t i = 0; i < merges.size(); ++i) {
    const Json& entry = merges[i];
    std::string left, right;
    if (entry.is_string()) {
      const std::string& line = entry.get_ref<const std::string&>();
      if (line.rfind("#version", 0) == 0) continue;  // a merges.txt header kept in the list
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model.merges[", i, "] = \"", line, "\" is not two tokens separated by one space"));
      }
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
               entry[1].is_string()) {
      left = entry[0].get<std::string>();
      right = entry[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("model.merges[", i, "] must be \"a b\" or [\"a\", \"b\"]"));
    }
    if (right.size() < continuing_subword_prefix_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.merges[", i, "]: \"", right, "\" lacks the subword prefix"));
    }
    const std::string merged = left + right.substr(continuing_subword_prefix_.size());
    auto l = vocab_.find(left), r = vocab_.find(right), m = vocab_.find(merged);
    const std::string* missing = l == vocab_.end()   ? &left
                                 : r == vocab_.end() ? &right
                                 : m == vocab_.end() ? &merged
                                                     : nullptr;
    if (missing != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.merges[", i, "]: token \"", *missing, "\" is not in the vocab"));
    }
    // A repeated pair keeps its last rank, as HF's map construction does.
    merges_[PairKey(l->second, r->second)] = Merge{rank, m->second};
    ++rank;
  }
  return absl::OkStatus();
}

bool BpeModel::MergesNeverCrossMetaspace() const {
  // Cutting is only exact when pieces are independent: no whole-word lookup, no affixes that
  // depend on the word's ends, and "▁" itself a symbol.
  if (ignore_merges_ || !continuing_subword_prefix_.empty() || !end_of_word_suffix_.empty() ||
      !vocab_.contains(absl::string_view(kMetaspace.data(), kMetaspace.size()))) {
    return false;
  }
  for (const auto& [pair, merge] : merges_) {
    const std::string& token = id_to_token_[merge.new_id];
    for (size_t at = token.find(kMetaspace, 1); at != std::string::npos;
         at = token.find(kMetaspace, at + 1)) {
      const bool after_metaspace =
          at >= kMetaspace.size() &&
          std::string_view(token).substr(at - kMetaspace.size(), kMetaspace.size()) == kMetaspace;
      if (!after_metaspace) return false;
    }
  }
  return true;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(AsAbsl(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= id_limit() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

const BpeModel::Merge* BpeModel::FindMerge(int32_t left, int32_t right) const {
  auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

absl::Status BpeModel::InitialSymbols(std::string_view word, std::vector<Symbol>& symbols) const {
  auto add = [&](int32_t id) {
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, index - 1, index + 1, true});
  };
  std::optional<int32_t> pending_unk;  // an unk symbol not yet added (it may absorb more)
  std::string piece;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t begin = pos;
    pos += Utf8SequenceLength(static_cast<uint8_t>(word[pos]));
    const bool is_first = begin == 0;
    const bool is_last = pos >= word.size();
    piece.clear();
    if (!is_first) piece.append(continuing_subword_prefix_);
    piece.append(word.substr(begin, pos - begin));
    if (is_last) piece.append(end_of_word_suffix_);
    if (auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk) add(*pending_unk);
      pending_unk.reset();
      add(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (unsigned char c : piece) all_bytes = all_bytes && byte_ids_[c] >= 0;
      if (all_bytes) {
        // HF leaves a pending unk pending here; it lands after these bytes.
        for (unsigned char c : piece) add(byte_ids_[c]);
        continue;
      }
    }
    if (!unk_token_) continue;  // HF drops characters it cannot spell at all
    auto unk = vocab_.find(*unk_token_);
    if (unk == vocab_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unk token \"", *unk_token_, "\" is not in the vocabulary"));
    }
    if (pending_unk && !fuse_unk_) add(*pending_unk);
    pending_unk = unk->second;
  }
  if (pending_unk) add(*pending_unk);
  if (!symbols.empty()) symbols.back().next = -1;
  return absl::OkStatus();
}

void BpeModel::MergeAll(std::vector<Symbol>& symbols) const {
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    // priority_queue pops the largest; the best is the lowest rank, then the leftmost.
    bool operator<(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Candidate> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Candidate> queue(std::less<Candidate>(), std::move(storage));
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = FindMerge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Skip entries made stale by an earlier merge of either symbol.
    const Merge* current = FindMerge(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const Merge* m = FindMerge(symbols[left.prev].id, left.id)) {
        queue.push({m->rank, left.prev, m->new_id});
      }
    }
    if (left.next >= 0) {
      if (const Merge* m = FindMerge(left.id, symbols[left.next].id)) {
        queue.push({m->rank, top.pos, m->new_id});
      }
    }
  }
}

absl::Status BpeModel::Tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (!segment_at_metaspace_) return TokenizeSegment(word, ids);
  // Cut before every "▁" that follows another character.
  size_t begin = 0;
  for (size_t at = word.find(kMetaspace, 1); at != std::string_view::npos;
       at = word.find(kMetaspace, at + kMetaspace.size())) {
    if (at >= begin + kMetaspace.size() &&
        word.substr(at - kMetaspace.size(), kMetaspace.size()) == kMetaspace) {
      continue;  // inside a run of "▁"
    }
    if (at > begin) {
      LOOM_RETURN_IF_ERROR(TokenizeSegment(word.substr(begin, at - begin), ids));
      begin = at;
    }
  }
  return TokenizeSegment(word.substr(begin), ids);
}

absl::Status BpeModel::TokenizeSegment(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return absl::OkStatus();
  if (ignore_merges_) {
    if (auto it = vocab_.find(AsAbsl(word)); it != vocab_.end()) {
      ids.push_back(it->second);
      return absl::OkStatus();
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (auto it = cache_.find(AsAbsl(word)); it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return absl::OkStatus();
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  LOOM_RETURN_IF_ERROR(InitialSymbols(word, symbols));
  MergeAll(symbols);
  const size_t first = ids.size();
  for (const Symbol& s : symbols) {
    if (s.alive) ids.push_back(s.id);
  }
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();  // bounded; real text refills fast
    cache_.emplace(std::string(word), std::vector<int32_t>(ids.begin() + first, ids.end()));
  }
  return absl::OkStatus();
}

}  // namespace loom::tokenizer
