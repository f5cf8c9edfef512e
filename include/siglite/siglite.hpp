// siglite: the public API in one include.
#pragma once

#include "siglite/core/allocator.hpp"
#include "siglite/core/device.hpp"
#include "siglite/core/error.hpp"
#include "siglite/core/generator.hpp"
#include "siglite/core/shape.hpp"
#include "siglite/core/tensor.hpp"

#include "siglite/autograd/engine.hpp"
#include "siglite/autograd/gradcheck.hpp"
#include "siglite/autograd/node.hpp"

#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/index.hpp"
#include "siglite/ops/linalg.hpp"
#include "siglite/ops/nn.hpp"
#include "siglite/ops/reduce.hpp"
#include "siglite/ops/view.hpp"
