// bf16 weights multiplied by AMX tiles (Intel AMX-BF16: Sapphire Rapids Xeons on), at every row
// count: one tdpbf16ps multiplies 16 weight rows by 16 activation rows over 32 columns (8192
// products), where an AVX-512 FMA does 16. Compiled with the AVX-512 flags plus -mavx512bf16
// -mamx-tile -mamx-bf16; run only where the CPU has them and the OS lets this process use the
// tile registers (cpu_isa.cc asks it). f32 and f16 weights, attention and the widening copies run
// isa_avx512-inl.h's code: splitting such weights into bf16 tiles on the fly was measured no
// faster than the FMA kernels (docs/cpu_performance.md).
//
// Exact to f32, as the FMA kernels are: the activations stay f32 (linear.cc). Each is split into
// three bf16 pieces, hi = bf16(x), mid = bf16(x - hi), lo = x - hi - mid, whose sum is x itself
// (24 significand bits in three pieces of 8); each product of a bf16 weight with a piece is exact
// in f32, and the tile unit sums them in f32. The pieces are packed as activation rows of their
// own (PackTiles), so one tdpbf16ps multiplies a weight tile by all three pieces of five
// activation rows, and the three partial sums are added when the tile is stored. Batch-1 decode
// thus costs one tile product per weight tile, far below what streaming the weights takes.
//
// The tiles (palette 1, each 16 rows of 64 bytes):
//  - A: 16 weight rows × 32 columns, loaded straight from the weights (row stride 2K bytes);
//  - B: 32 columns × 16 piece rows (five activation rows × three pieces, the 16th zero), in the
//    pair-interleaved layout tdpbf16ps takes (row r: columns 2r and 2r+1 of each piece row);
//  - C: the 16 piece rows × 16 weight rows, transposed, in f32.
// Tile registers are not renamed, so a load into a tile waits for the products still reading
// it: the kernels keep up to four accumulators busy and alternate the tiles they load into.
// Columns past the last whole block of 32 are added by AVX-512 FMAs after the tiles, and weight
// rows past the last whole group of 16 by the AVX-512 row kernel.
#include <algorithm>
#include <utility>

#include "kernels/cpu/isa_avx512-inl.h"

namespace loom::kernels::internal {
namespace {

constexpr int kTile = 16;   // weight rows per A tile; piece rows per B tile
constexpr int kPieces = 3;  // bf16 pieces per f32 activation
constexpr int kRowsPerTile = kTile / kPieces;  // activation rows per B tile: 5
constexpr int64_t kTileBytes = 1024;
constexpr int64_t kTileElements = kTileBytes / 2;  // bf16 values in a tile

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

// The tile intrinsics name their tiles in the assembly text, so a tile number must be a literal:
// these map template arguments onto literals.
#define LOOM_TILE_CASE(t, ...) else if constexpr (T == t) __VA_ARGS__;  // NOLINT
template <int T>
inline void Load(const void* p, int64_t stride) {
  static_assert(T >= 0 && T < 8);
  if constexpr (false) {
  }
  LOOM_TILE_CASE(0, _tile_loadd(0, p, stride)) LOOM_TILE_CASE(1, _tile_loadd(1, p, stride))
  LOOM_TILE_CASE(2, _tile_loadd(2, p, stride)) LOOM_TILE_CASE(3, _tile_loadd(3, p, stride))
  LOOM_TILE_CASE(4, _tile_loadd(4, p, stride)) LOOM_TILE_CASE(5, _tile_loadd(5, p, stride))
  LOOM_TILE_CASE(6, _tile_loadd(6, p, stride)) LOOM_TILE_CASE(7, _tile_loadd(7, p, stride))
}
template <int T>
inline void Zero() {
  static_assert(T >= 0 && T < 4);
  if constexpr (false) {
  }
  LOOM_TILE_CASE(0, _tile_zero(0)) LOOM_TILE_CASE(1, _tile_zero(1))
  LOOM_TILE_CASE(2, _tile_zero(2)) LOOM_TILE_CASE(3, _tile_zero(3))
}
template <int T>
inline void Store(void* p) {
  static_assert(T >= 0 && T < 4);
  if constexpr (false) {
  }
  LOOM_TILE_CASE(0, _tile_stored(0, p, 64)) LOOM_TILE_CASE(1, _tile_stored(1, p, 64))
  LOOM_TILE_CASE(2, _tile_stored(2, p, 64)) LOOM_TILE_CASE(3, _tile_stored(3, p, 64))
}
#undef LOOM_TILE_CASE
// C += A · B for accumulators 0..3, A tiles 6..7, B tiles 4..5.
template <int C, int A, int B>
inline void Product() {
  static_assert(C >= 0 && C < 4 && (A == 6 || A == 7) && (B == 4 || B == 5));
  constexpr int T = C * 4 + (A - 6) * 2 + (B - 4);
#define LOOM_PRODUCT(c) \
  else if constexpr (T == c * 4) _tile_dpbf16ps(c, 6, 4); \
  else if constexpr (T == c * 4 + 1) _tile_dpbf16ps(c, 6, 5); \
  else if constexpr (T == c * 4 + 2) _tile_dpbf16ps(c, 7, 4); \
  else if constexpr (T == c * 4 + 3) _tile_dpbf16ps(c, 7, 5);
  if constexpr (false) {
  }
  LOOM_PRODUCT(0) LOOM_PRODUCT(1) LOOM_PRODUCT(2) LOOM_PRODUCT(3)
#undef LOOM_PRODUCT
}
template <typename Fn, int... I>
inline void UnrollImpl(Fn&& fn, std::integer_sequence<int, I...>) {
  (fn(std::integral_constant<int, I>{}), ...);
}
// fn(std::integral_constant<int, i>) for i = 0 .. N-1, each i a constant expression.
template <int N, typename Fn>
inline void Unroll(Fn&& fn) {
  UnrollImpl(fn, std::make_integer_sequence<int, N>{});
}

int64_t ActivationTiles(int64_t M) { return (M + kRowsPerTile - 1) / kRowsPerTile; }

// Floats of packed activations: a 1 KiB B tile per activation tile and block of 32 columns.
int64_t PackedTileFloats(int64_t M, int64_t K) {
  return ActivationTiles(M) * (K / kPackBlock) * kTileBytes / 4;
}

// The next bf16 piece of 32 values held as two f32 vectors (their first 16, their last 16):
// returns the piece, 32 bf16 values in order, and leaves in x0, x1 what it did not take.
inline __m512i TakePiece(__m512& x0, __m512& x1) {
  // Rounds to nearest even; the first operand fills the upper 16 values.
  const __m512i piece = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(x1, x0));
  x0 = _mm512_sub_ps(x0, Bf16Weights::Widen(_mm512_castsi512_si256(piece)));
  x1 = _mm512_sub_ps(x1, Bf16Weights::Widen(_mm512_extracti64x4_epi64(piece, 1)));
  return piece;
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
        for (int p = 0; p < kPieces; ++p) v[i * kPieces + p] = TakePiece(x0, x1);
      }
      Transpose16x16(v);
      auto* tile = reinterpret_cast<uint8_t*>(packed) + (b * blocks + c) * kTileBytes;
      for (int r = 0; r < 16; ++r) _mm512_storeu_si512(tile + r * 64, v[r]);
    }
  }
}

// Stores C tile (16 weight rows from n, piece rows of activation tile b) into out, summing each
// activation row's three pieces; rows past M are dropped. Transposed in registers first, so each
// output row is three vector loads, two adds and a store.
template <int T>
inline void StoreTile(const LinearSlice& s, int64_t b, int64_t n) {
  alignas(64) float c[kTile][kTile];
  Store<T>(c);
  __m512i v[16];
  for (int j = 0; j < kTile; ++j) v[j] = _mm512_load_si512(c[j]);
  Transpose16x16(v);  // v[q]: piece row q across the 16 weight rows
  const int64_t m = b * kRowsPerTile, rows = std::min<int64_t>(kRowsPerTile, s.M - m);
  for (int64_t i = 0; i < rows; ++i) {
    const int q = static_cast<int>(i) * kPieces;
    const __m512 sum = _mm512_add_ps(
        _mm512_add_ps(_mm512_castsi512_ps(v[q]), _mm512_castsi512_ps(v[q + 1])),
        _mm512_castsi512_ps(v[q + 2]));
    _mm512_storeu_ps(s.out + (m + i) * s.N + n, sum);
  }
}

// kW (1, 2 or 4) weight groups of 16 rows from n against kB (1 or 2) activation tiles from b,
// kW * kB <= 4: C tiles 0..3 (weight group j, activation tile i: j * kB + i), B tiles 4..5,
// A tiles 6..7, the A loads alternating between the two.
template <int kW, int kB>
void TileBlock(const LinearSlice& s, int64_t b, int64_t n) {
  static_assert(kW * kB <= 4 && kB <= 2 && (kB == 1 || kW <= 2));
  const int64_t K = s.K, blocks = K / kPackBlock;
  const auto* w = static_cast<const uint16_t*>(s.w) + n * K;
  Unroll<kW * kB>([](auto t) { Zero<t>(); });
  for (int64_t c = 0; c < blocks; ++c) {
    Load<4>(TileOf(s.packed, K, b, c), 64);
    if constexpr (kB == 2) Load<5>(TileOf(s.packed, K, b + 1, c), 64);
    Unroll<kW>([&](auto j) {
      constexpr int tile = 6 + j % 2;
      Load<tile>(w + j * kTile * K + c * kPackBlock, 2 * K);
      Product<j * kB, tile, 4>();
      if constexpr (kB == 2) Product<j * kB + 1, tile, 5>();
    });
  }
  Unroll<kW * kB>([&](auto t) { StoreTile<t>(s, b + t % kB, n + t / kB * kTile); });
}

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
// memory once per pass of 80 activation rows.
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
    .linear_f32 = {LinearRows<InOrder<F32Weights>>, kLinearStreamingMaxRows, false},
    .linear_bf16 = {LinearRowsAmx, kAnyRows, true},
    .linear_f16 = {LinearRows<InOrder<F16Weights>>, kLinearStreamingMaxRows, false},
    .pack = PackTiles,
    .packed_floats = PackedTileFloats,
    .row_group = 4 * kTile,
    .widen_bf16 = Widen<Bf16Weights>,
    .widen_f16 = Widen<F16Weights>,
    .attention_scores = AttentionScores,
    .attention_values = AttentionValues,
};

}  // namespace loom::kernels::internal
