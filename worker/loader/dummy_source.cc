// The `dummy` weight source: generated weights that are the same full model at every TP size
// (DESIGN.md §3.4). Element i of parameter `name` is a pure function of (seed, name, i): a
// splitmix64 hash of the seed, the name's FNV-1a-64 hash and the element's row-major index in the
// full tensor, mapped to a uniform value in [-range, range]. A rank generates only its region,
// and the values do not depend on how the tensor was cut.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/splitmix64.h"
#include "common/status.h"
#include "worker/loader/region_reader.h"
#include "worker/loader/weight_source.h"

namespace loom {
namespace {

uint64_t Fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

class DummySource : public WeightSource {
 public:
  DummySource(uint64_t seed, double range) : seed_(seed), range_(std::fabs(range)) {}

  absl::Status Check(const std::vector<ParameterInfo>& params, bool) override {
    for (const ParameterInfo& p : params) LOOM_RETURN_IF_ERROR(ValidateRegion(p));
    return absl::OkStatus();
  }

  absl::StatusOr<Tensor> Read(const ParameterInfo& p) override {
    Tensor out = Tensor::Empty(DType::kF32, p.local_shape());
    LOOM_RETURN_IF_ERROR(Generate(p, out));
    return out;
  }

  // Generated straight into the model's buffer (f32, bf16 or f16), with no f32 intermediate.
  absl::Status ReadInto(const ParameterInfo& p, Tensor& dst) override {
    if (!IsFloat(dst.dtype()) || !dst.is_contiguous() || dst.shape() != p.local_shape()) {
      return WeightSource::ReadInto(p, dst);
    }
    return Generate(p, dst);
  }

  int64_t bytes_read() const override { return 0; }
  std::vector<std::string> files_opened() const override { return {}; }

 private:
  // Fills `out` (contiguous f32, bf16 or f16, shape p.local_shape()) with p's region: the same
  // f32 values, rounded to the buffer's type.
  absl::Status Generate(const ParameterInfo& p, Tensor& out) const {
    LOOM_RETURN_IF_ERROR(ValidateRegion(p));
    const std::vector<int64_t> local = p.local_shape();
    const int64_t nd = static_cast<int64_t>(local.size());
    const int64_t cols = nd == 0 ? 1 : local[nd - 1];
    if (out.numel() == 0) return absl::OkStatus();
    const int64_t rows = out.numel() / cols;
    const uint64_t key = SplitMix64(seed_ ^ SplitMix64(Fnv1a64(p.name)));
    const DType dtype = out.dtype();
    float* f32 = dtype == DType::kF32 ? out.data<float>() : nullptr;
    uint16_t* b16 = dtype == DType::kF32 ? nullptr : out.data<uint16_t>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      // The global row-major index of this local row's first element.
      int64_t global = 0, stride = 1, rest = r;
      for (int64_t d = nd - 1; d >= 0; --d) {
        const int64_t offset = d == p.split_dim ? p.start : 0;
        const int64_t i = d == nd - 1 ? 0 : rest % local[d];
        if (d != nd - 1) rest /= local[d];
        global += (i + offset) * stride;
        stride *= p.shape[d];
      }
      if (dtype == DType::kBF16) {
        for (int64_t c = 0; c < cols; ++c) b16[r * cols + c] = F32ToBF16(Value(key, global + c));
      } else if (dtype == DType::kF16) {
        for (int64_t c = 0; c < cols; ++c) b16[r * cols + c] = F32ToF16(Value(key, global + c));
      } else {
        for (int64_t c = 0; c < cols; ++c) f32[r * cols + c] = Value(key, global + c);
      }
    }
    return absl::OkStatus();
  }

  float Value(uint64_t key, int64_t index) const {
    // One splitmix64 step per element: the generator's own sequence, started at the key.
    const uint64_t bits = SplitMix64(key + static_cast<uint64_t>(index) * kSplitMix64Gamma);
    const double u = static_cast<double>(bits >> 11) * 0x1.0p-53;  // [0, 1)
    return static_cast<float>((2 * u - 1) * range_);
  }

  uint64_t seed_;
  double range_;
};

}  // namespace

std::unique_ptr<WeightSource> MakeDummySource(uint64_t seed, double range) {
  return std::make_unique<DummySource>(seed, range);
}

}  // namespace loom
