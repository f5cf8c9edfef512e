// The sigmoid loss of a global batch spread over the ranks of a job (paper section 3.3; docs/distributed.md):
//   chunked:  the paper's ring. Each rank computes its b x b block of logits (it holds the positives), then D - 1
//             times passes the text embeddings it holds to the next rank and adds the negatives-only block against
//             what it received; backward passes them around again, with the gradient of each text block travelling
//             behind it and back to its owner. Memory per rank O(b * d), traffic 2(D - 1) + D blocks of b x d a step.
//   gathered: every rank all-gathers the text embeddings and computes its b x B block; backward reduce-scatters
//             their gradients. Memory per rank O(B * d): the baseline of the other implementations.
// Both return this rank's share of the loss: the sum over ranks of the returned values is sigmoid_loss of the
// global batch (image i of rank r is global row r * b + i), and so is the sum of the gradients the ranks compute for
// t' and b and for any parameters they share; each rank's embedding gradients are the global loss's. Data-parallel
// training all-reduces the parameter gradients (a sum) and steps as one process on the global batch would.
// Every block is computed by the tiled kernels: no rank ever holds b x b logits, let alone b x B or B x B.
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "siglite/autograd/node.hpp"
#include "siglite/dist/communicator.hpp"
#include "siglite/loss/checks.hpp"
#include "siglite/loss/sigmoid.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite::dist {

namespace loss_detail {

constexpr int kTextTag = 101, kGradTag = 102;

/// Checks the loss's inputs on this rank, then that every rank holds a batch of the same shape [b, d]: all ranks
/// see every rank's shape (or that its own checks refused its inputs), so a bad input on any rank throws on all of
/// them, naming the rank, rather than leaving the others waiting in the ring.
template <typename T>
void check_inputs(const char* op, Communicator& comm, const Tensor<T>& img, const Tensor<T>& txt,
                  const Tensor<T>& t_prime, const Tensor<T>& bias, int64_t tile) {
  std::exception_ptr refused;
  try {
    loss::detail::check_embeddings(op, img, txt);
    loss::detail::check_scalar_param(op, "t_prime", t_prime, img.device());
    loss::detail::check_scalar_param(op, "bias", bias, img.device());
    SIGLITE_CHECK(tile > 0, op, ": tile size ", tile, " is not positive");
  } catch (const Error&) {
    refused = std::current_exception();
  }
  constexpr int64_t kRefused = -1;  // in place of the shape: this rank's own checks failed
  const std::vector<int64_t> shape =
      refused ? std::vector<int64_t>{kRefused, 0} : std::vector<int64_t>{img.shape()[0], img.shape()[1]};
  const Tensor<int64_t> mine = Tensor<int64_t>::from_vector(shape, Device::cpu());
  const Tensor<int64_t> all = Tensor<int64_t>::empty({2 * static_cast<int64_t>(comm.size())}, Device::cpu());
  comm.all_gather(buffer_of(mine), buffer_of(all));
  if (refused) std::rethrow_exception(refused);
  const std::vector<int64_t> shapes = all.to_vector();
  for (int k = 0; k < comm.size(); ++k)
    SIGLITE_CHECK(shapes[2 * static_cast<size_t>(k)] != kRefused, op, " on ", comm.where(), ": rank ", k,
                  " refused its inputs (its own error says why)");
  for (int k = 0; k < comm.size(); ++k) {
    const int64_t b = shapes[2 * static_cast<size_t>(k)], d = shapes[2 * static_cast<size_t>(k) + 1];
    SIGLITE_CHECK(b == shapes[0] && d == shapes[1], op, " on ", comm.where(), ": rank ", k, " holds embeddings [",
                  b, ",", d, "] and rank 0 [", shapes[0], ",", shapes[1], "]; every rank must hold the same number ",
                  "of pairs of the same width");
  }
}

/// The tiled kernels' arguments for the block of this rank's b images against one rank's b texts.
inline kernels::SigmoidLossArgs block_args(int64_t b, int64_t d, int64_t tile, bool positives, double divisor) {
  kernels::SigmoidLossArgs a;
  a.n = b;
  a.m = b;
  a.d = d;
  a.tile = tile;
  a.positives = positives;
  a.divisor = divisor;
  return a;
}

/// A [1] tensor holding the sum of parts [k] (added in order).
template <typename T>
Tensor<T> total(const Tensor<T>& parts) {
  return sum(parts).reshape({1});
}

/// The text blocks of the ring, one step at a time: in step s this rank holds the texts of rank (rank - s) mod D in
/// current(); advance() waits for the transfer that started at the step's beginning (begin()) and moves on.
template <typename T>
class TextRing {
 public:
  TextRing(Communicator& comm, const Tensor<T>& own) : comm_(comm), current_(own) {
    if (comm.size() == 1) return;  // nothing travels
    for (Tensor<T>& t : spare_) t = Tensor<T>::empty(own.shape(), own.device());
  }
  /// Starts passing current() on to the next rank and receiving the next block, unless s is the last step.
  void begin(int s) {
    if (s + 1 >= comm_.size()) return;
    incoming_ = spare_[s % 2];
    pending_ = comm_.exchange(buffer_of(current_), comm_.next(), buffer_of(incoming_), comm_.prev(), kTextTag);
  }
  const Tensor<T>& current() const { return current_; }
  void advance() {
    if (!pending_) return;
    pending_->wait();
    pending_.reset();
    current_ = incoming_;  // the caller's own texts are never received into
  }

 private:
  Communicator& comm_;
  Tensor<T> current_, incoming_;
  Tensor<T> spare_[2];
  std::unique_ptr<Pending> pending_;
};

template <typename T>
std::vector<Tensor<T>> chunked_backward(Communicator& comm, const Tensor<T>& x, const Tensor<T>& y,
                                        const Tensor<T>& tp, const Tensor<T>& bias, const Tensor<T>& g, int64_t tile,
                                        bool need_img) {
  const int D = comm.size();
  const int64_t b = x.shape()[0], d = x.shape()[1];
  const Device dev = x.device();
  const double divisor = static_cast<double>(b) * D;
  const kernels::Kernels<T>& k = kernels::on<T>(dev);
  const Tensor<T> gc = g.contiguous();
  Tensor<T> dimg;
  Tensor<T> dx = Tensor<T>::empty({b, d}, dev), dy = Tensor<T>::empty({b, d}, dev);
  Tensor<T> dt_parts = Tensor<T>::empty({D}, dev), db_parts = Tensor<T>::empty({D}, dev);
  // The gradient of the text block held in step s, summed over the ranks it has visited, leaves for the next rank at
  // the end of the step, which holds that block in step s + 1; the sum arriving at the same time is the one for the
  // block this rank holds next. After step D - 1 each sum is complete, and what arrives is this rank's own.
  Tensor<T> arriving = D > 1 ? Tensor<T>::empty({b, d}, dev) : Tensor<T>(), leaving;
  std::unique_ptr<Pending> sums;
  TextRing<T> ring(comm, y);
  for (int s = 0; s < D; ++s) {
    ring.begin(s);
    k.sigmoid_loss_backward(block_args(b, d, tile, s == 0, divisor), x.device_ptr(), ring.current().device_ptr(),
                            tp.device_ptr(), bias.device_ptr(), gc.device_ptr(), need_img ? dx.device_ptr() : nullptr,
                            dy.device_ptr(), dt_parts.device_ptr() + s, db_parts.device_ptr() + s);
    if (need_img) dimg = s == 0 ? dx.clone() : dimg + dx;
    if (sums) {
      sums->wait();  // `leaving` of the step before has gone, `arriving` is here
      leaving = arriving + dy;
    } else {
      leaving = dy.clone();  // dy is overwritten in the next step
    }
    if (D > 1) sums = comm.exchange(buffer_of(leaving), comm.next(), buffer_of(arriving), comm.prev(), kGradTag);
    ring.advance();
  }
  if (sums) sums->wait();
  const Tensor<T> dtxt = D > 1 ? arriving : leaving;
  return {dimg, dtxt, total(dt_parts), total(db_parts)};
}

/// x [b, d] -> [D * b, d]: every rank's rows in rank order; backward sums the gradients of each rank's rows over the
/// ranks and hands them to it (a reduce-scatter).
template <typename T>
Tensor<T> all_gather_rows(Communicator& comm, const Tensor<T>& x) {
  Shape shape = x.shape();
  shape[0] *= comm.size();
  const Tensor<T> xc = x.detach().contiguous();
  Tensor<T> out = Tensor<T>::empty(shape, x.device());
  comm.all_gather(buffer_of(xc), buffer_of(out));
  Communicator* c = &comm;
  return record("all_gather_rows", out, {x}, [c, in_shape = x.shape()](const Tensor<T>& g, const std::vector<bool>&) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> mine = Tensor<T>::empty(in_shape, gc.device());
    c->reduce_scatter_sum(buffer_of(gc), buffer_of(mine));
    return std::vector<Tensor<T>>{mine};
  });
}

}  // namespace loss_detail

/// The paper's chunked sigmoid loss: this rank's share of the loss of the global batch whose rows r * b ... r * b +
/// b - 1 are this rank's img_emb and txt_emb [b, d] (L2-normalised), with t' and b [1] the same on every rank. Every
/// rank must call it, with the same b, d and tile; the header explains what the value and the gradients are. The
/// backward pass communicates too: every rank must call backward() on it (or on a loss that uses it). `comm` must
/// outlive the backward pass.
template <typename T>
Tensor<T> chunked_sigmoid_loss(Communicator& comm, const Tensor<T>& img_emb, const Tensor<T>& txt_emb,
                               const Tensor<T>& t_prime, const Tensor<T>& bias, int64_t tile = 256) {
  const char* op = "chunked_sigmoid_loss";
  loss_detail::check_inputs(op, comm, img_emb, txt_emb, t_prime, bias, tile);
  const int D = comm.size();
  const int64_t b = img_emb.shape()[0], d = img_emb.shape()[1];
  const Device dev = img_emb.device();
  const Tensor<T> xs = img_emb.detach().contiguous(), ys = txt_emb.detach().contiguous();
  const Tensor<T> tp = t_prime.detach().contiguous(), bb = bias.detach().contiguous();
  const double divisor = static_cast<double>(b) * D;
  Tensor<T> parts = Tensor<T>::empty({D}, dev);
  loss_detail::TextRing<T> ring(comm, ys);
  for (int s = 0; s < D; ++s) {
    ring.begin(s);  // the next block travels while this one is computed
    kernels::on<T>(dev).sigmoid_loss_forward(loss_detail::block_args(b, d, tile, s == 0, divisor), xs.device_ptr(),
                                             ring.current().device_ptr(), tp.device_ptr(), bb.device_ptr(),
                                             parts.device_ptr() + s);
    ring.advance();
  }
  Tensor<T> out;
  {
    NoGradGuard no_grad;
    out = sum(parts);
  }
  Communicator* c = &comm;
  return record(op, out, {img_emb, txt_emb, t_prime, bias},
                [c, xs, ys, tp, bb, tile](const Tensor<T>& g, const std::vector<bool>& need) {
                  return loss_detail::chunked_backward(*c, xs, ys, tp, bb, g, tile, need[0]);
                });
}

/// The gathered sigmoid loss: the same value and gradients as chunked_sigmoid_loss (to rounding), from an all-gather
/// of the text embeddings and one b x B block per rank (computed tiled). Memory per rank grows with B.
template <typename T>
Tensor<T> gathered_sigmoid_loss(Communicator& comm, const Tensor<T>& img_emb, const Tensor<T>& txt_emb,
                                const Tensor<T>& t_prime, const Tensor<T>& bias, int64_t tile = 256) {
  loss_detail::check_inputs("gathered_sigmoid_loss", comm, img_emb, txt_emb, t_prime, bias, tile);
  const int64_t b = img_emb.shape()[0];
  loss::SigmoidBlock block;
  block.positive_offset = comm.rank() * b;
  block.divisor = static_cast<double>(b) * comm.size();
  block.tile = tile;
  return loss::sigmoid_loss_block(img_emb, loss_detail::all_gather_rows(comm, txt_emb), t_prime, bias, block);
}

/// The loss of the whole global batch on every rank (for logging): the sum of the ranks' shares, detached.
template <typename T>
Tensor<T> global_loss(Communicator& comm, const Tensor<T>& share) {
  Tensor<T> total = share.detach().contiguous().clone();
  all_reduce_sum(comm, total);
  return total;
}

}  // namespace siglite::dist
