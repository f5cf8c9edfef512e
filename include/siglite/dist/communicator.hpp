// Communicator: the collectives and point-to-point transfers that distributed training needs, between the ranks of
// one job, on device buffers. MpiCommunicator (dist/mpi.hpp) serves any device, through host memory where the
// device's is not the host's; SelfCommunicator is the job of one rank. The interface follows torch.distributed's
// ProcessGroup: blocking collectives, and a paired send and receive (one step of a ring) that returns a handle to
// wait on, so the transfer runs while the caller computes.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include "siglite/core/device.hpp"
#include "siglite/core/error.hpp"
#include "siglite/core/tensor.hpp"

namespace siglite::dist {

/// The element types a communicator moves.
enum class Element { F32, F64, I64 };

template <typename T>
constexpr Element element_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int64_t>,
                "communicators move float, double and int64_t");
  if constexpr (std::is_same_v<T, float>) return Element::F32;
  if constexpr (std::is_same_v<T, double>) return Element::F64;
  return Element::I64;
}

inline size_t element_size(Element e) { return e == Element::F32 ? 4 : 8; }

/// `count` elements of type `element` at `data`, in the memory of `device`.
struct Buffer {
  void* data = nullptr;
  int64_t count = 0;
  Element element = Element::F32;
  Device device;
  size_t bytes() const { return static_cast<size_t>(count) * element_size(element); }
};

/// A contiguous tensor's elements as a Buffer.
template <typename T>
Buffer buffer_of(const Tensor<T>& t) {
  SIGLITE_CHECK(t.is_contiguous(), "communicator: the tensor of shape ", t.shape(), " is not contiguous");
  return {t.device_ptr(), t.numel(), element_of<T>(), t.device()};
}

/// An exchange in flight; wait() returns once the received buffer holds its data and the sent one may be written
/// again. Destroying a pending exchange waits for it.
class Pending {
 public:
  virtual ~Pending() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "mpi", "nccl" or "self", for messages.
  virtual std::string name() const = 0;

  /// Every rank's x becomes the sum of all ranks' x, added in the same order on every rank.
  virtual void all_reduce_sum(const Buffer& x) = 0;
  /// x becomes root's x on every rank.
  virtual void broadcast(const Buffer& x, int root) = 0;
  /// out (size() * in.count elements) becomes the concatenation of every rank's in, in rank order.
  virtual void all_gather(const Buffer& in, const Buffer& out) = 0;
  /// out (in.count / size() elements) becomes the sum over ranks of their in's rank()-th slice.
  virtual void reduce_scatter_sum(const Buffer& in, const Buffer& out) = 0;
  /// Starts sending `out` to rank `to` and receiving `in` from rank `from`: one step of a ring, as MPI_Sendrecv pairs
  /// them (and NCCL's grouped send and receive). `to` must start an exchange receiving from this rank under the same
  /// tag; the exchanges of one tag are matched in the order they were started.
  virtual std::unique_ptr<Pending> exchange(const Buffer& out, int to, const Buffer& in, int from, int tag) = 0;
  /// Returns once every rank has called it.
  virtual void barrier() = 0;

  /// "rank R of D" for messages.
  std::string where() const { return detail::cat("rank ", rank(), " of ", size()); }
  /// The ranks before and after this one around the ring 0, 1, ..., size() - 1, 0.
  int prev() const { return (rank() + size() - 1) % size(); }
  int next() const { return (rank() + 1) % size(); }
};

/// The job of one rank: every collective leaves its buffers as they are (or copies in to out), and an exchange with
/// itself copies out to in.
class SelfCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "self"; }
  void all_reduce_sum(const Buffer&) override {}
  void broadcast(const Buffer&, int root) override { check_rank(root); }
  void all_gather(const Buffer& in, const Buffer& out) override { copy(in, out); }
  void reduce_scatter_sum(const Buffer& in, const Buffer& out) override { copy(in, out); }
  std::unique_ptr<Pending> exchange(const Buffer& out, int to, const Buffer& in, int from, int) override {
    check_rank(to);
    check_rank(from);
    copy(out, in);
    return std::make_unique<Done>();
  }
  void barrier() override {}

 private:
  struct Done : Pending {
    void wait() override {}
  };
  static void check_rank(int r) { SIGLITE_CHECK(r == 0, "self communicator: rank ", r, " is not 0, the only rank"); }
  static void copy(const Buffer& from, const Buffer& to) {
    SIGLITE_CHECK(from.count == to.count && from.element == to.element, "self communicator: ", from.count,
                  " elements into a buffer of ", to.count);
    backends::copy_bytes(to.device, to.data, from.device, from.data, from.bytes());
  }
};

/// x (contiguous) becomes the sum of every rank's x.
template <typename T>
void all_reduce_sum(Communicator& comm, const Tensor<T>& x) {
  comm.all_reduce_sum(buffer_of(x));
}

/// x (contiguous) becomes root's x on every rank.
template <typename T>
void broadcast(Communicator& comm, const Tensor<T>& x, int root) {
  comm.broadcast(buffer_of(x), root);
}

}  // namespace siglite::dist
