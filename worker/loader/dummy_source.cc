// The `dummy` weight source: generated weights that are the same full model at every TP size
// (DESIGN.md §3.4). Element i of parameter `name` is a pure function of (seed, name, i): a
// splitmix64 hash of the seed, the name's FNV-1a-64 hash and the element's row-major index in the
// full tensor, mapped to a uniform value in [-range, range] (common/hash_uniform.h). A rank
// generates only its region, and the values do not depend on how the tensor was cut nor on the
// device: kernels::FillHashUniform writes them on the rank's own device, host or GPU.
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/splitmix64.h"
#include "kernels/execution_context.h"
#include "kernels/kernels.h"
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

  bool generates() const override { return true; }
  // Straight into the part on its own device: no host buffer, no copy.
  absl::Status GenerateInto(kernels::ExecutionContext& context, const ParameterInfo& p,
                            Tensor& part) override {
    LOOM_RETURN_IF_ERROR(ValidateRegion(p));
    if (part.shape() != p.local_shape()) {
      return absl::InvalidArgumentError(absl::StrCat(p.name, ": the part is ", part.DebugString()));
    }
    return kernels::FillHashUniform(context, FillOf(p), part);
  }

  int64_t bytes_read() const override { return 0; }
  std::vector<std::string> files_opened() const override { return {}; }

 private:
  // Fills `out` (contiguous f32, bf16 or f16 on the host, shape p.local_shape()) with p's
  // region: the same f32 values, rounded to the buffer's type.
  absl::Status Generate(const ParameterInfo& p, Tensor& out) const {
    LOOM_RETURN_IF_ERROR(ValidateRegion(p));
    return kernels::FillHashUniform(kernels::HostContext(), FillOf(p), out);
  }

  // p's region as the kernel sees it: [outer, rows, inner] of [outer, full_rows, inner], the
  // split dimension in the middle (the first one for a tensor held whole).
  kernels::HashFill FillOf(const ParameterInfo& p) const {
    kernels::HashFill f;
    f.key = SplitMix64(seed_ ^ SplitMix64(Fnv1a64(p.name)));
    f.range = range_;
    const int nd = static_cast<int>(p.shape.size());
    const int split = p.split_dim < 0 ? 0 : p.split_dim;
    f.rows = nd == 0 ? 1 : p.local_shape()[split];
    f.full_rows = nd == 0 ? 1 : p.shape[split];
    f.start = p.split_dim < 0 ? 0 : p.start;
    for (int d = 0; d < split; ++d) f.outer *= p.shape[d];
    for (int d = split + 1; d < nd; ++d) f.inner *= p.shape[d];
    return f;
  }

  uint64_t seed_;
  double range_;
};

}  // namespace

std::unique_ptr<WeightSource> MakeDummySource(uint64_t seed, double range) {
  return std::make_unique<DummySource>(seed, range);
}

}  // namespace loom
