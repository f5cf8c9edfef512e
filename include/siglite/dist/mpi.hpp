// The MPI communicator: the ranks of an `mpirun` job (Open MPI, MPICH, ...), on one machine or many. MPI reads and
// writes host memory, so a buffer on another device (a GPU, the test suite's far device) is staged through a host
// copy; on CUDA devices NCCL (dist/nccl.cuh) moves it without that. Link the CMake target siglite::mpi.
//
// Errors: every MPI call returns its error (MPI_ERRORS_RETURN) and it is raised as siglite::Error naming the call and
// the rank. A rank that throws out of its program must call abort_job (dist::run_ranks does): MPI_Abort ends every
// rank within seconds, where a rank that merely exits would leave the others waiting in their next collective.
#pragma once
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "siglite/backends/backend.hpp"
#include "siglite/dist/communicator.hpp"

namespace siglite::dist {

namespace mpi_detail {

inline MPI_Datatype datatype(Element e) {
  switch (e) {
    case Element::F32: return MPI_FLOAT;
    case Element::F64: return MPI_DOUBLE;
    case Element::I64: return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

/// MPI counts are int: a buffer of more elements is refused rather than cut.
inline int count_of(const char* call, const Buffer& b) {
  SIGLITE_CHECK(b.count >= 0 && b.count <= 0x7fffffff, "mpi ", call, ": ", b.count,
                " elements exceed MPI's int count");
  return static_cast<int>(b.count);
}

/// Host memory holding a buffer's elements: the buffer itself on the CPU, else a copy made on request.
class HostView {
 public:
  HostView(const Buffer& b, bool copy_in) : b_(b) {
    if (b.device.is_cpu()) return;
    staging_.resize(b.bytes());
    if (copy_in) backends::copy_bytes(Device::cpu(), staging_.data(), b.device, b.data, b.bytes());
  }
  void* data() { return b_.device.is_cpu() ? b_.data : staging_.data(); }
  /// Writes what MPI put into the host copy back to the device.
  void copy_out() {
    if (!b_.device.is_cpu()) backends::copy_bytes(b_.device, b_.data, Device::cpu(), staging_.data(), b_.bytes());
  }

 private:
  Buffer b_;
  std::vector<unsigned char> staging_;
};

}  // namespace mpi_detail

class MpiCommunicator : public Communicator {
 public:
  /// Joins the job: initialises MPI when no one has (and finalises it when destroyed), on MPI_COMM_WORLD. Only the
  /// thread that made it may call it (MPI_THREAD_FUNNELED).
  MpiCommunicator() {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      int provided = 0;
      SIGLITE_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS,
                    "mpi: MPI_Init_thread failed");
      owns_mpi_ = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  ~MpiCommunicator() override {
    if (owns_mpi_) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  void all_reduce_sum(const Buffer& x) override {
    mpi_detail::HostView h(x, true);
    // MPI_Allreduce need not give every rank the same bits (the ranks may add in different orders); a reduction
    // to rank 0 and its broadcast do, so the ranks' parameters stay identical.
    const int n = mpi_detail::count_of("all_reduce", x);
    const MPI_Datatype t = mpi_detail::datatype(x.element);
    if (rank_ == 0) {
      check("MPI_Reduce", MPI_Reduce(MPI_IN_PLACE, h.data(), n, t, MPI_SUM, 0, MPI_COMM_WORLD));
    } else {
      check("MPI_Reduce", MPI_Reduce(h.data(), nullptr, n, t, MPI_SUM, 0, MPI_COMM_WORLD));
    }
    check("MPI_Bcast", MPI_Bcast(h.data(), n, t, 0, MPI_COMM_WORLD));
    h.copy_out();
  }
  void broadcast(const Buffer& x, int root) override {
    check_rank("broadcast", root);
    mpi_detail::HostView h(x, rank_ == root);
    check("MPI_Bcast", MPI_Bcast(h.data(), mpi_detail::count_of("broadcast", x), mpi_detail::datatype(x.element),
                                 root, MPI_COMM_WORLD));
    h.copy_out();
  }
  void all_gather(const Buffer& in, const Buffer& out) override {
    SIGLITE_CHECK(out.count == in.count * size_ && in.element == out.element, "mpi all_gather on ", where(), ": ",
                  in.count, " elements from each of ", size_, " ranks into a buffer of ", out.count);
    mpi_detail::HostView hi(in, true), ho(out, false);
    const MPI_Datatype t = mpi_detail::datatype(in.element);
    check("MPI_Allgather",
          MPI_Allgather(hi.data(), mpi_detail::count_of("all_gather", in), t, ho.data(),
                        mpi_detail::count_of("all_gather", in), t, MPI_COMM_WORLD));
    ho.copy_out();
  }
  void reduce_scatter_sum(const Buffer& in, const Buffer& out) override {
    SIGLITE_CHECK(in.count == out.count * size_ && in.element == out.element, "mpi reduce_scatter on ", where(),
                  ": ", in.count, " elements to ", size_, " ranks into a buffer of ", out.count);
    mpi_detail::HostView hi(in, true), ho(out, false);
    check("MPI_Reduce_scatter_block",
          MPI_Reduce_scatter_block(hi.data(), ho.data(), mpi_detail::count_of("reduce_scatter", out),
                                   mpi_detail::datatype(in.element), MPI_SUM, MPI_COMM_WORLD));
    ho.copy_out();
  }
  std::unique_ptr<Pending> exchange(const Buffer& out, int to, const Buffer& in, int from, int tag) override {
    check_rank("exchange", to);
    check_rank("exchange", from);
    SIGLITE_CHECK(out.element == in.element, "mpi exchange on ", where(), ": sends and receives different types");
    auto p = std::make_unique<Exchange>(out, in, this);
    const MPI_Datatype t = mpi_detail::datatype(out.element);
    check("MPI_Irecv", MPI_Irecv(p->in.data(), mpi_detail::count_of("exchange", in), t, from, tag, MPI_COMM_WORLD,
                                 &p->requests[0]));
    check("MPI_Isend", MPI_Isend(p->out.data(), mpi_detail::count_of("exchange", out), t, to, tag, MPI_COMM_WORLD,
                                 &p->requests[1]));
    return p;
  }
  void barrier() override { check("MPI_Barrier", MPI_Barrier(MPI_COMM_WORLD)); }

  /// Ends the whole job: prints "rank R of D: message" to stderr and calls MPI_Abort, which stops every rank.
  [[noreturn]] void abort_job(const std::string& message, int code = 1) const {
    std::fprintf(stderr, "%s: %s\n", where().c_str(), message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::abort();
  }

 private:
  struct Exchange : Pending {
    Exchange(const Buffer& o, const Buffer& i, const MpiCommunicator* c) : out(o, true), in(i, false), comm(c) {}
    ~Exchange() override {
      if (!done) MPI_Waitall(2, requests, MPI_STATUSES_IGNORE);
    }
    void wait() override {
      if (done) return;
      done = true;
      comm->check("MPI_Waitall", MPI_Waitall(2, requests, MPI_STATUSES_IGNORE));
      in.copy_out();
    }
    mpi_detail::HostView out, in;
    const MpiCommunicator* comm;
    MPI_Request requests[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    bool done = false;
  };

  void check(const char* call, int code) const {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw Error(detail::cat("mpi: ", call, " failed on ", where(), ": ", std::string(text, length)));
  }
  void check_rank(const char* op, int r) const {
    SIGLITE_CHECK(r >= 0 && r < size_, "mpi ", op, " on ", where(), ": rank ", r, " is not in 0..", size_ - 1);
  }

  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
};

}  // namespace siglite::dist
