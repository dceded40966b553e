// Element types Loom stores tensors in, and exact conversions between the float formats.
#ifndef LOOM_COMMON_DTYPE_H_
#define LOOM_COMMON_DTYPE_H_

#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/status/statusor.h"

namespace loom {

enum class DType : uint8_t { kF32, kBF16, kF16, kI32, kI64 };

// Bytes per element.
size_t DTypeSize(DType dtype);
// The safetensors spelling: "F32", "BF16", "F16", "I32", "I64".
const char* DTypeName(DType dtype);
// Parses a safetensors dtype string; other dtypes (F64, U8, ...) are an InvalidArgument error.
absl::StatusOr<DType> ParseDType(std::string_view name);
// Parses the user-facing spellings too: "float32", "bfloat16", "float16", "f32", "bf16", "f16".
absl::StatusOr<DType> ParseFloatDTypeName(std::string_view name);
// The user-facing (and HF config.json) spelling of a float type: "float32", "bfloat16",
// "float16"; other types give their safetensors name.
const char* FloatDTypeName(DType dtype);
bool IsFloat(DType dtype);

inline float BF16ToF32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t F32ToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float F16ToF32(uint16_t v);
uint16_t F32ToF16(float f);

// Converts `n` elements of float type `from` at `src` into f32 at `dst`.
void ConvertToF32(DType from, const void* src, float* dst, size_t n);
// Converts `n` f32 values into float type `to`.
void ConvertFromF32(const float* src, DType to, void* dst, size_t n);

}  // namespace loom

#endif  // LOOM_COMMON_DTYPE_H_
