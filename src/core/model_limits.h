/* model_limits.h: the largest text encoder this engine loads, one set of
 * numbers for the converter (tools/convert refuses to write a model outside
 * them) and the loader (src/model.c refuses to load one). They keep every
 * size the engine computes from a model's metadata far from int overflow
 * (positions x positions scores, vocab x hidden embeddings, ...) and bound
 * what a hostile file can make the loader allocate; they are far above the
 * models this engine targets (BERT-large: 24 layers, hidden 1024, 16 heads,
 * 4096 intermediate, 512 positions, 30,522 tokens). */
#ifndef ENG_MODEL_LIMITS_H
#define ENG_MODEL_LIMITS_H

#define ENG__MAX_HIDDEN 16384
#define ENG__MAX_LAYERS 256
#define ENG__MAX_HEADS 1024
#define ENG__MAX_INTERMEDIATE 65536
#define ENG__MAX_POSITIONS 65536
#define ENG__MAX_VOCAB (1 << 22)
#define ENG__MAX_LABELS (1 << 20)

#endif
