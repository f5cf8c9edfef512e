// siglite: the public API in one include, with the CPU backend registered. The headers below declare what they
// use of each other (siglite/fwd.hpp) rather than include it; this one includes them all.
#pragma once

#include "siglite/backends/backend.hpp"
#include "siglite/backends/cpu.hpp"

#include "siglite/core/allocator.hpp"
#include "siglite/core/device.hpp"
#include "siglite/core/error.hpp"
#include "siglite/core/files.hpp"
#include "siglite/core/generator.hpp"
#include "siglite/core/names.hpp"
#include "siglite/core/precision.hpp"
#include "siglite/core/shape.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/fwd.hpp"

#include "siglite/autograd/engine.hpp"
#include "siglite/autograd/gradcheck.hpp"
#include "siglite/autograd/inference_mode.hpp"
#include "siglite/autograd/node.hpp"

#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/index.hpp"
#include "siglite/ops/linalg.hpp"
#include "siglite/ops/nn.hpp"
#include "siglite/ops/reduce.hpp"
#include "siglite/ops/view.hpp"

#include "siglite/nn/init.hpp"
#include "siglite/nn/layers.hpp"
#include "siglite/nn/module.hpp"

#include "siglite/models/config.hpp"
#include "siglite/models/siglip.hpp"

#include "siglite/loss/sigmoid.hpp"
#include "siglite/loss/softmax.hpp"
#include "siglite/dist/communicator.hpp"
#include "siglite/dist/loss.hpp"

#include "siglite/optim/optim.hpp"

#include "siglite/io/checkpoint.hpp"
#include "siglite/io/plot.hpp"
#include "siglite/io/safetensors.hpp"

#include "siglite/data/dataset.hpp"
#include "siglite/data/fashion_mnist.hpp"
#include "siglite/data/image.hpp"
#include "siglite/data/loader.hpp"
#include "siglite/data/manifest.hpp"
#include "siglite/data/sentencepiece_tokenizer.hpp"
#include "siglite/data/shapes.hpp"
#include "siglite/data/tokenizer.hpp"

#include "siglite/eval/shapes.hpp"
#include "siglite/eval/zero_shot.hpp"
#include "siglite/train/trainer.hpp"
