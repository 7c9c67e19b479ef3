#include "modtrain/model/packed_gemm.h"

#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#if MODTRAIN_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace modtrain {

int64_t gemm_rows(int64_t rows) {
  if (rows < 16) return rows < 1 ? 1 : rows;
  int64_t step = 16;
  while (step * 16 * 2 <= rows) step *= 2;
  return (rows + step - 1) / step * step;
}

#if MODTRAIN_HAVE_DNNL

bool packed_gemm_compiled() { return true; }

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One stream per thread: a stream is cheap but not free to make, and executing on it is not
// synchronised across threads.
dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

// oneDNN 3 dropped the operation descriptors (primitive_desc takes the engine first).
dnnl::inner_product_forward::primitive_desc inner_product_pd(const memory::desc& src, const memory::desc& weights,
                                                             const memory::desc* bias, const memory::desc& dst,
                                                             const dnnl::primitive_attr& attr) {
#if DNNL_VERSION_MAJOR >= 3
  if (bias) return {cpu_engine(), dnnl::prop_kind::forward_inference, src, weights, *bias, dst, attr};
  return {cpu_engine(), dnnl::prop_kind::forward_inference, src, weights, dst, attr};
#else
  const auto desc =
      bias ? dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference, src, weights, *bias, dst)
           : dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference, src, weights, dst);
  return {desc, attr, cpu_engine()};
#endif
}

std::runtime_error dnnl_failure(const char* what, const dnnl::error& e, int64_t rows, int64_t out, int64_t in) {
  return std::runtime_error(std::string("oneDNN: ") + what + " for a " + std::to_string(rows) + " x " +
                            std::to_string(in) + " -> " + std::to_string(out) + " GEMM failed: " + e.what() +
                            " (status " + std::to_string(static_cast<int>(e.status)) +
                            "); MODTRAIN_CPU_GEMM=blas avoids oneDNN");
}

}  // namespace

struct PackedLinear::Impl {
  int64_t out = 0, in = 0;
  Epilogue epilogue = Epilogue::kNone;
  const float* plain = nullptr;  // the caller's weight, [out, in]
  memory::desc plain_desc, bias_desc;
  memory packed;  // the weight in the layout the kernels chose at 128 rows
  memory bias;
  bool has_bias = false;
  struct Kernel {
    dnnl::inner_product_forward primitive;
    bool reads_packed;  // false: this row count's kernel wanted another layout; it reads the plain weight
  };
  mutable std::mutex mutex;
  mutable std::map<std::pair<int64_t, bool>, std::shared_ptr<const Kernel>> kernels;  // by (rows, adds)

  dnnl::primitive_attr attr(int64_t rows, bool adds) const {
    dnnl::post_ops ops;
    if (epilogue == Epilogue::kGeluErf)
#if DNNL_VERSION_MAJOR >= 3
      ops.append_eltwise(dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
#else
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
#endif
    if (adds) ops.append_binary(dnnl::algorithm::binary_add, memory::desc({rows, out}, kF32, Tag::ab));
    dnnl::primitive_attr a;
    a.set_post_ops(ops);
    return a;
  }
  int add_index() const { return epilogue == Epilogue::kGeluErf ? 1 : 0; }

  std::shared_ptr<const Kernel> kernel(int64_t rows, bool adds) const {
    std::lock_guard<std::mutex> lock(mutex);
    auto& slot = kernels[{rows, adds}];
    if (slot) return slot;
    const memory::desc src({rows, in}, kF32, Tag::ab), dst({rows, out}, kF32, Tag::ab);
    const memory::desc* b = has_bias ? &bias_desc : nullptr;
    const dnnl::primitive_attr a = attr(rows, adds);
    // The laid-out weight when this row count's kernel takes it (oneDNN may refuse a layout for a
    // shape); otherwise the plain one, never a second copy.
    try {
      auto pd = inner_product_pd(src, packed.get_desc(), b, dst, a);
      if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0)  // a reference kernel: worse than the plain one
        throw dnnl::error(dnnl_unimplemented, "only a reference kernel takes the laid-out weight");
      slot = std::make_shared<Kernel>(Kernel{dnnl::inner_product_forward(pd), true});
    } catch (const dnnl::error&) {
      try {
        auto pd = inner_product_pd(src, plain_desc, b, dst, a);
        slot = std::make_shared<Kernel>(Kernel{dnnl::inner_product_forward(pd), false});
      } catch (const dnnl::error& e) {
        kernels.erase({rows, adds});
        throw dnnl_failure("building the kernel", e, rows, out, in);
      }
    }
    return slot;
  }
};

PackedLinear::PackedLinear(const float* weight, const float* bias, int64_t out, int64_t in, Epilogue epilogue)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.out = out, m.in = in, m.plain = weight, m.epilogue = epilogue;
  m.plain_desc = memory::desc({out, in}, kF32, Tag::ab);
  m.bias_desc = memory::desc({out}, kF32, Tag::a);
  try {
    // The layout oneDNN's kernel picks for 128 rows (format `any`): its blocked layout for this
    // weight shape, which kernels for other row counts take as well (checked per row count).
    const memory::desc src({128, in}, kF32, Tag::ab), dst({128, out}, kF32, Tag::ab);
    const memory::desc any({out, in}, kF32, Tag::any);
    auto pd = inner_product_pd(src, any, bias ? &m.bias_desc : nullptr, dst, dnnl::primitive_attr());
    memory plain(m.plain_desc, cpu_engine(), const_cast<float*>(weight));
    m.packed = memory(pd.weights_desc(), cpu_engine());  // owns its buffer
    dnnl::reorder(plain, m.packed).execute(thread_stream(), plain, m.packed);
    if (bias) {
      m.has_bias = true;
      m.bias = memory(m.bias_desc, cpu_engine());
      memory given(m.bias_desc, cpu_engine(), const_cast<float*>(bias));
      dnnl::reorder(given, m.bias).execute(thread_stream(), given, m.bias);
    }
    thread_stream().wait();
  } catch (const dnnl::error& e) {
    throw dnnl_failure("laying out the weight", e, 128, out, in);
  }
}

PackedLinear::~PackedLinear() = default;

void PackedLinear::run(const float* x, int64_t rows, float* y, const float* add) const {
  const Impl& m = *impl_;
  // In pieces whose row counts gemm_rows keeps as they are (541 rows: 512 + 16 + 13), so that the
  // kernels are few and nothing is copied to pad the rows.
  for (int64_t done = 0; done < rows;) {
    const int64_t left = rows - done;
    int64_t n = left;
    if (left >= 16) {
      int64_t step = 16;
      while (step * 16 * 2 <= left) step *= 2;
      n = left / step * step;
    }
    const auto kernel = m.kernel(n, add != nullptr);
    try {
      memory src({{n, m.in}, kF32, Tag::ab}, cpu_engine(), const_cast<float*>(x + done * m.in));
      memory dst({{n, m.out}, kF32, Tag::ab}, cpu_engine(), y + done * m.out);
      memory weights =
          kernel->reads_packed ? m.packed : memory(m.plain_desc, cpu_engine(), const_cast<float*>(m.plain));
      std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
      if (m.has_bias) args.emplace(DNNL_ARG_BIAS, m.bias);
      if (add)
        args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(m.add_index()) | DNNL_ARG_SRC_1,
                     memory({{n, m.out}, kF32, Tag::ab}, cpu_engine(), const_cast<float*>(add + done * m.out)));
      kernel->primitive.execute(thread_stream(), args);
      thread_stream().wait();
    } catch (const dnnl::error& e) {
      throw dnnl_failure("running the kernel", e, n, m.out, m.in);
    }
    done += n;
  }
}

int64_t PackedLinear::out() const { return impl_->out; }
int64_t PackedLinear::in() const { return impl_->in; }
size_t PackedLinear::primitives() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->kernels.size();
}

// ---- attention ---------------------------------------------------------------------------------
namespace {

dnnl::matmul::primitive_desc matmul_pd(const memory::desc& src, const memory::desc& weights, const memory::desc& dst,
                                       const dnnl::primitive_attr& attr) {
#if DNNL_VERSION_MAJOR >= 3
  return {cpu_engine(), src, weights, dst, attr};
#else
  return {dnnl::matmul::desc(src, weights, dst), attr, cpu_engine()};
#endif
}

dnnl::softmax_forward::primitive_desc softmax_pd(const memory::desc& data, int axis) {
#if DNNL_VERSION_MAJOR >= 3
  return {cpu_engine(), dnnl::prop_kind::forward_inference, dnnl::algorithm::softmax_accurate, data, data, axis};
#else
  return {dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, data, axis), cpu_engine()};
#endif
}

}  // namespace

struct PackedAttention::Impl {
  int64_t heads = 0, head_dim = 0;
  struct Kernels {
    dnnl::matmul scores;  // Q K^T, scaled, plus the key bias
    dnnl::softmax_forward softmax;
    dnnl::matmul context;  // P V, written as [b, t, heads, head_dim]
  };
  mutable std::mutex mutex;
  mutable std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const Kernels>> kernels;

  std::shared_ptr<const Kernels> get(int64_t b, int64_t t) const {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = kernels.find({b, t});
    if (found != kernels.end()) return found->second;
    if (kernels.size() >= 1024) kernels.clear();  // a bound on kept kernels (callers round b and t: rarely reached)
    auto& slot = kernels[{b, t}];
    const int64_t h = heads, d = head_dim;
    try {
      const memory::desc q({b, h, t, d}, kF32, Tag::abcd), kt({b, h, d, t}, kF32, Tag::abdc),
          scores({b, h, t, t}, kF32, Tag::abcd), bias({b, 1, 1, t}, kF32, Tag::abcd),
          out({b, h, t, d}, kF32, memory::dims{t * h * d, d, h * d, 1});
      dnnl::post_ops ops;
      const float scale = 1.0f / std::sqrt(static_cast<float>(d));
#if DNNL_VERSION_MAJOR >= 3
      ops.append_eltwise(dnnl::algorithm::eltwise_linear, scale, 0.0f);
#else
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, scale, 0.0f);
#endif
      ops.append_binary(dnnl::algorithm::binary_add, bias);
      dnnl::primitive_attr scaled;
      scaled.set_post_ops(ops);
      slot = std::make_shared<Kernels>(Kernels{dnnl::matmul(matmul_pd(q, kt, scores, scaled)),
                                               dnnl::softmax_forward(softmax_pd(scores, 3)),
                                               dnnl::matmul(matmul_pd(scores, q, out, dnnl::primitive_attr()))});
    } catch (const dnnl::error& e) {
      kernels.erase({b, t});
      throw std::runtime_error(std::string("oneDNN: building attention kernels for ") + std::to_string(b) +
                               " records of " + std::to_string(t) + " tokens failed: " + e.what() +
                               "; MODTRAIN_CPU_GEMM=blas avoids oneDNN");
    }
    return slot;
  }
};

PackedAttention::PackedAttention(int64_t heads, int64_t head_dim) : impl_(std::make_unique<Impl>()) {
  impl_->heads = heads, impl_->head_dim = head_dim;
}
PackedAttention::~PackedAttention() = default;

void PackedAttention::run(const float* qkv, const float* key_bias, int64_t b, int64_t t, float* out) const {
  const Impl& m = *impl_;
  const auto k = m.get(b, t);
  const int64_t h = m.heads, d = m.head_dim, part = b * h * t * d;
  thread_local std::vector<float> scores;
  scores.resize(static_cast<size_t>(b * h * t * t));
  try {
    auto& engine = cpu_engine();
    float* base = const_cast<float*>(qkv);
    memory q({{b, h, t, d}, kF32, Tag::abcd}, engine, base), kt({{b, h, d, t}, kF32, Tag::abdc}, engine, base + part),
        v({{b, h, t, d}, kF32, Tag::abcd}, engine, base + 2 * part),
        s({{b, h, t, t}, kF32, Tag::abcd}, engine, scores.data()),
        bias({{b, 1, 1, t}, kF32, Tag::abcd}, engine, const_cast<float*>(key_bias)),
        o({{b, h, t, d}, kF32, memory::dims{t * h * d, d, h * d, 1}}, engine, out);
    auto& stream = thread_stream();
    k->scores.execute(stream, {{DNNL_ARG_SRC, q},
                               {DNNL_ARG_WEIGHTS, kt},
                               {DNNL_ARG_DST, s},
                               {DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, bias}});
    k->softmax.execute(stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_DST, s}});
    k->context.execute(stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, o}});
    stream.wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("oneDNN: attention over ") + std::to_string(b) + " records of " +
                             std::to_string(t) + " tokens failed: " + e.what() +
                             "; MODTRAIN_CPU_GEMM=blas avoids oneDNN");
  }
}

#else  // built without oneDNN's headers

bool packed_gemm_compiled() { return false; }

struct PackedLinear::Impl {};
PackedLinear::PackedLinear(const float*, const float*, int64_t, int64_t, Epilogue) {
  throw std::logic_error("PackedLinear: this build has no oneDNN headers (libdnnl-dev); check packed_gemm_compiled()");
}
PackedLinear::~PackedLinear() = default;
void PackedLinear::run(const float*, int64_t, float*, const float*) const {}
int64_t PackedLinear::out() const { return 0; }
int64_t PackedLinear::in() const { return 0; }
size_t PackedLinear::primitives() const { return 0; }
struct PackedAttention::Impl {};
PackedAttention::PackedAttention(int64_t, int64_t) {
  throw std::logic_error(
      "PackedAttention: this build has no oneDNN headers (libdnnl-dev); check packed_gemm_compiled()");
}
PackedAttention::~PackedAttention() = default;
void PackedAttention::run(const float*, const float*, int64_t, int64_t, float*) const {}

#endif

}  // namespace modtrain
