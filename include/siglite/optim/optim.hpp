// siglite::optim: AdamW, SGD and LION, learning-rate schedules, gradient clipping and parameter groups.
#pragma once

#include "siglite/optim/adamw.hpp"
#include "siglite/optim/clip.hpp"
#include "siglite/optim/lion.hpp"
#include "siglite/optim/optimizer.hpp"
#include "siglite/optim/param_groups.hpp"
#include "siglite/optim/schedule.hpp"
#include "siglite/optim/sgd.hpp"
