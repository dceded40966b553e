// bf16 weights multiplied by AMX tiles (Intel AMX-BF16: Sapphire Rapids Xeons on), at every row
// count: one tdpbf16ps multiplies 16 weight rows by 16 activation rows over 32 columns (8192
// products), where an AVX-512 FMA does 16. Compiled with the AVX-512 flags plus -mavx512bf16
// -mamx-tile -mamx-bf16; run only where the CPU has them and the OS lets this process use the
// tile registers (cpu_isa.cc asks it). Everything but bf16 weights runs isa_avx512-inl.h's code.
//
// Exact to f32, as the FMA kernels are: the activations stay f32 (linear.cc). Each is split into
// three bf16 pieces, hi = bf16(x), mid = bf16(x - hi), lo = x - hi - mid, whose sum is x itself
// (24 significand bits in three pieces of 8); each product of a bf16 weight with a piece is exact
// in f32, and the tile unit sums them in f32. The pieces are packed as activation rows of their
// own, so one tdpbf16ps multiplies a weight tile by all three pieces of five activation rows, and
// the three partial sums are added when the tile is stored. Batch-1 decode thus costs one tile
// product per weight tile, far below what streaming the weights from memory takes.
//
// The tiles (palette 1, each 16 rows of 64 bytes):
//  - A: 16 weight rows × 32 columns, loaded straight from the weights (row stride 2K bytes);
//  - B: 32 columns × 16 piece rows (five activation rows × three pieces, the 16th zero), in the
//    pair-interleaved layout tdpbf16ps takes (row r: columns 2r and 2r+1 of each piece row),
//    packed once per call by PackTiles;
//  - C: the 16 piece rows × 16 weight rows, transposed, in f32.
// Tile registers are not renamed, so a load into a tile waits for the products still reading
// it: the kernels keep four accumulators busy and alternate the tiles they load into.
// Columns past the last whole block of 32 are added by AVX-512 FMAs after the tiles, and weight
// rows past the last whole group of 16 by the AVX-512 row kernel.
#include <algorithm>

#include "kernels/cpu/isa_avx512-inl.h"

namespace loom::kernels::internal {
namespace {

constexpr int kTile = 16;   // weight rows per A tile; piece rows per B tile
constexpr int kPieces = 3;  // bf16 pieces per f32 activation
constexpr int kRowsPerTile = kTile / kPieces;  // activation rows per B tile: 5
constexpr int64_t kTileBytes = 1024;

struct TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

void ConfigureTiles() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.bytes_per_row[t] = 64;
    config.rows[t] = kTile;
  }
  _tile_loadconfig(&config);
}

int64_t ActivationTiles(int64_t M) { return (M + kRowsPerTile - 1) / kRowsPerTile; }

// Floats of packed activations: a 1 KiB B tile per activation tile and block of 32 columns.
int64_t PackedTileFloats(int64_t M, int64_t K) {
  return ActivationTiles(M) * (K / kPackBlock) * kTileBytes / 4;
}

__m512 Bf16ToF32(__m256i bits) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// The B tile of activation tile b and column block c.
inline const uint8_t* TileOf(const float* packed, int64_t K, int64_t b, int64_t c) {
  return reinterpret_cast<const uint8_t*>(packed) + (b * (K / kPackBlock) + c) * kTileBytes;
}

// r[i] = the i-th dword of every v[j], as v[j] → r[j] for a 16 × 16 matrix of dwords.
void Transpose16x16(__m512i (&v)[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    v[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    v[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    v[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    v[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Each 128-bit lane now holds a 4 × 4 block; move the blocks into place.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(v[i], v[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(v[i], v[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(v[i + 8], v[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(v[i + 8], v[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    v[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    v[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    v[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

// Splits x into its hi, mid and lo pieces and writes them in tile layout: piece p of activation
// row m is piece row q = (m % 5) * 3 + p of tile m / 5, and within the tile the 32-bit pair of
// columns (2r, 2r + 1) of piece row q sits at dword r * 16 + q. Piece rows without an
// activation row (the 16th of every tile, and those past M in the last) are zero: their sums
// are computed and never stored, and garbage could be NaN.
void PackTiles(const float* x, int64_t M, int64_t K, float* packed) {
  const int64_t blocks = K / kPackBlock;
  for (int64_t b = 0; b < ActivationTiles(M); ++b) {
    const int64_t rows = std::min<int64_t>(kRowsPerTile, M - b * kRowsPerTile);
    for (int64_t c = 0; c < blocks; ++c) {
      __m512i v[16];
      for (int q = 0; q < 16; ++q) v[q] = _mm512_setzero_si512();
      for (int64_t i = 0; i < rows; ++i) {
        const float* row = x + (b * kRowsPerTile + i) * K + c * kPackBlock;
        __m512 x0 = _mm512_loadu_ps(row), x1 = _mm512_loadu_ps(row + 16);
        for (int p = 0; p < kPieces; ++p) {
          // Rounds to nearest even; the first operand fills the upper 16 values.
          const __m512i piece = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(x1, x0));
          v[i * kPieces + p] = piece;
          x0 = _mm512_sub_ps(x0, Bf16ToF32(_mm512_castsi512_si256(piece)));
          x1 = _mm512_sub_ps(x1, Bf16ToF32(_mm512_extracti64x4_epi64(piece, 1)));
        }
      }
      Transpose16x16(v);
      auto* tile = reinterpret_cast<uint8_t*>(packed) + (b * blocks + c) * kTileBytes;
      for (int r = 0; r < 16; ++r) _mm512_storeu_si512(tile + r * 64, v[r]);
    }
  }
}

// Stores C tile t (16 weight rows from n, piece rows of activation tile b) into out, summing
// each activation row's three pieces; rows past M are dropped.
#define LOOM_STORE_TILE(t, b, n)                                               \
  do {                                                                         \
    alignas(64) float c_[kTile][kTile];                                        \
    _tile_stored(t, c_, 64);                                                   \
    StoreSums(c_, s, (b) * kRowsPerTile, n);                                   \
  } while (0)

inline void StoreSums(const float (&c)[kTile][kTile], const LinearSlice& s, int64_t m, int64_t n) {
  const int64_t rows = std::min<int64_t>(kRowsPerTile, s.M - m);
  for (int64_t i = 0; i < rows; ++i) {
    float* dst = s.out + (m + i) * s.N + n;
    const int q = static_cast<int>(i) * kPieces;
    for (int j = 0; j < kTile; ++j) dst[j] = (c[j][q] + c[j][q + 1]) + c[j][q + 2];
  }
}

// kW (1, 2 or 4) weight groups of 16 rows from n against kB (1 or 2) activation tiles from b,
// kW * kB <= 4: C tiles 0..3, B tiles 4..5, A tiles 6..7. With one activation tile the weight
// groups alternate between the two A tiles, so each load overlaps the product before it.
template <int kW, int kB>
void TileBlock(const LinearSlice& s, int64_t b, int64_t n) {
  static_assert(kW * kB <= 4 && kB <= 2 && (kB == 1 || kW <= 2));
  const int64_t K = s.K, blocks = K / kPackBlock, stride = 2 * K;
  const auto* w = static_cast<const uint16_t*>(s.w) + n * K;
  _tile_zero(0);
  if constexpr (kW * kB > 1) _tile_zero(1);
  if constexpr (kW * kB > 2) _tile_zero(2);
  if constexpr (kW * kB > 3) _tile_zero(3);
  for (int64_t c = 0; c < blocks; ++c) {
    const uint16_t* wc = w + c * kPackBlock;
    if constexpr (kB == 1) {
      _tile_loadd(4, TileOf(s.packed, K, b, c), 64);
      _tile_loadd(6, wc, stride);
      _tile_dpbf16ps(0, 6, 4);
      if constexpr (kW > 1) {
        _tile_loadd(7, wc + kTile * K, stride);
        _tile_dpbf16ps(1, 7, 4);
      }
      if constexpr (kW > 2) {
        _tile_loadd(6, wc + 2 * kTile * K, stride);
        _tile_dpbf16ps(2, 6, 4);
        _tile_loadd(7, wc + 3 * kTile * K, stride);
        _tile_dpbf16ps(3, 7, 4);
      }
    } else {
      _tile_loadd(4, TileOf(s.packed, K, b, c), 64);
      _tile_loadd(5, TileOf(s.packed, K, b + 1, c), 64);
      _tile_loadd(6, wc, stride);
      _tile_dpbf16ps(0, 6, 4);
      _tile_dpbf16ps(1, 6, 5);
      if constexpr (kW > 1) {
        _tile_loadd(7, wc + kTile * K, stride);
        _tile_dpbf16ps(2, 7, 4);
        _tile_dpbf16ps(3, 7, 5);
      }
    }
  }
  // C tile of weight group j, activation tile i: j * kB + i.
  LOOM_STORE_TILE(0, b, n);
  if constexpr (kB == 2) LOOM_STORE_TILE(1, b + 1, n);
  if constexpr (kB == 1 && kW > 1) LOOM_STORE_TILE(1, b, n + kTile);
  if constexpr (kB == 2 && kW > 1) {
    LOOM_STORE_TILE(2, b, n + kTile);
    LOOM_STORE_TILE(3, b + 1, n + kTile);
  }
  if constexpr (kB == 1 && kW > 2) {
    LOOM_STORE_TILE(2, b, n + 2 * kTile);
    LOOM_STORE_TILE(3, b, n + 3 * kTile);
  }
}

#undef LOOM_STORE_TILE

// out[m, n] += the columns past the last whole block of 32, for weight rows [n_begin, n_end).
void AddColumnTail(const LinearSlice& s, int64_t n_begin, int64_t n_end) {
  const int64_t K = s.K, k0 = K / kPackBlock * kPackBlock;
  if (k0 == K) return;
  const __mmask16 lo = FirstLanes(K - k0), hi = FirstLanes(K - k0 > 16 ? K - k0 - 16 : 0);
  const auto* w = static_cast<const uint16_t*>(s.w);
  for (int64_t n = n_begin; n < n_end; ++n) {
    const __m512 w0 = Bf16Weights::Load16Masked(w + n * K + k0, lo);
    const __m512 w1 = Bf16Weights::Load16Masked(w + n * K + k0 + 16, hi);
    for (int64_t m = 0; m < s.M; ++m) {
      const float* x = s.x + m * K + k0;
      const __m512 sum = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(hi, x + 16),
                                         _mm512_mul_ps(w0, _mm512_maskz_loadu_ps(lo, x)));
      s.out[m * s.N + n] += _mm512_reduce_add_ps(sum);
    }
  }
}

// Activation tiles per pass over a stretch of weight rows: 16 B tiles of K = 3072 columns are
// 1.5 MiB, re-read from cache for every pair of weight groups, while the weights are read from
// memory once per pass (80 activation rows).
constexpr int64_t kTilesPerPass = 16;

void LinearRowsAmx(const LinearSlice& s, int64_t n_begin, int64_t n_end) {
  const int64_t whole_end = n_begin + (n_end - n_begin) / kTile * kTile;
  if (s.K >= kPackBlock && whole_end > n_begin) {
    ConfigureTiles();
    const int64_t tiles = ActivationTiles(s.M);
    if (tiles == 1) {
      int64_t n = n_begin;
      for (; n + 4 * kTile <= whole_end; n += 4 * kTile) TileBlock<4, 1>(s, 0, n);
      for (; n + 2 * kTile <= whole_end; n += 2 * kTile) TileBlock<2, 1>(s, 0, n);
      if (n < whole_end) TileBlock<1, 1>(s, 0, n);
    } else {
      for (int64_t b0 = 0; b0 < tiles; b0 += kTilesPerPass) {
        const int64_t b1 = std::min(tiles, b0 + kTilesPerPass);
        int64_t n = n_begin;
        for (; n + 2 * kTile <= whole_end; n += 2 * kTile) {
          int64_t b = b0;
          for (; b + 2 <= b1; b += 2) TileBlock<2, 2>(s, b, n);
          if (b < b1) TileBlock<2, 1>(s, b, n);
        }
        if (n < whole_end) {
          int64_t b = b0;
          for (; b + 2 <= b1; b += 2) TileBlock<1, 2>(s, b, n);
          if (b < b1) TileBlock<1, 1>(s, b, n);
        }
      }
    }
    _tile_release();
    AddColumnTail(s, n_begin, whole_end);
  } else {
    // No whole column block: the tiles have nothing to do.
    LinearRows<InOrder<Bf16Weights>>(s, n_begin, whole_end);
  }
  if (whole_end < n_end) LinearRows<InOrder<Bf16Weights>>(s, whole_end, n_end);
}

}  // namespace

constinit const IsaKernels kAmxKernels = {
    .linear_f32 = LinearRows<InOrder<F32Weights>>,
    .linear_bf16 = LinearRowsAmx,
    .linear_f16 = LinearRows<InOrder<F16Weights>>,
    .pack_bf16 = PackTiles,
    .packed_floats = PackedTileFloats,
    .linear_bf16_max_rows = kAnyRows,
    .row_group = 4 * kTile,
    .widen_bf16 = Widen<Bf16Weights>,
    .widen_f16 = Widen<F16Weights>,
    .attention_scores = AttentionScores,
    .attention_values = AttentionValues,
};

}  // namespace loom::kernels::internal
