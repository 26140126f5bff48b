// libFuzzer target: the catalog-file decoder (loom::search::decode_catalog,
// behind load_catalog and loom search) on arbitrary bytes. A loom::Error is
// the expected answer to a bad file; any other exception, crash, sanitizer
// finding, leak or runaway allocation is a bug.
//
// Each input is decoded twice: as it is, and with its content length and
// CRC32 repaired, so that mutations reach the decoder behind the frame. A
// catalog that decodes must re-encode to the same bytes, answer an exact and
// an approximate search, and, when it keeps a model, have that model decode.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "loom/error.hpp"
#include "repaired_frame.hpp"
#include "loom/search/catalog_file.hpp"
#include "loom/search/catalog_model.hpp"
#include "loom/search/exact_search.hpp"
#include "loom/search/hnsw_index.hpp"

namespace {


void check(bool ok) {
  if (!ok) __builtin_trap();
}

void exercise(const loom::search::Catalog& c) {
  using namespace loom::search;
  const std::vector<std::uint8_t> once = encode_catalog(c);
  check(encode_catalog(decode_catalog(once, "<re-encoded>")) == once);
  if (c.empty() || c.size() * c.dim() > 65536) return;
  const std::vector<float> query = c.all_vectors();  // the first item as the query
  const SearchOptions o{.k = std::min<loom::Index>(3, c.size())};
  const SearchResults exact = ExactSearch(c).search(query.data(), 1, o);
  check(exact.size() == 1 && static_cast<loom::Index>(exact[0].size()) == o.k);
  if (c.size() <= 256) (void)HnswIndex(c, {.ef_construction = 16}).search(query.data(), 1, o);
  if (!c.info().model.empty()) (void)catalog_model(c, "<fuzz input>");
}

void one(std::span<const std::uint8_t> bytes) {
  try {
    exercise(loom::search::decode_catalog(bytes, "<fuzz input>"));
  } catch (const loom::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loom::fuzzing::as_given_and_repaired(data, size, one);
  return 0;
}
