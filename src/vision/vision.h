/* vision.h: the CNN kind (eng__kind_cnn, vision.c). Internal. */
#ifndef ENG_VISION_H
#define ENG_VISION_H

#include "cnn.h"
#include "engine.h"

/* The network of an image model, or NULL for any other model: for the
 * benchmarks and tests that drive eng__cnn_forward directly. */
const eng__cnn *eng__cnn_of(const eng_model *m);

#endif
