/* cnn.h: ResNet image classifiers (torchvision's resnet18/34/50 and any
 * other depth or width of the same two block types) from a .eng file written
 * by tools/convert/resnet.c.
 *
 * The file's metadata says what to build (docs/FORMAT.md, "ResNet"):
 *   "kind": "cnn", "arch": "resnet18" (informational),
 *   "resnet": {"block": "basic"|"bottleneck", "layers": [n1,n2,n3,n4], "width": 64},
 *   "num_classes": 1000, "labels": [...] (optional, num_classes strings),
 *   "image": {"resize": 256, "crop": 224, "mean": [3], "std": [3]}.
 * Tensors, all F32, BatchNorm folded into the conv before it (docs in
 * tools/convert/resnet.c): "conv1.w" [7][7][3][width] (kh, kw, cin, cout) and
 * "conv1.b" [width]; "layer<L>.<B>.conv<1|2|3>.{w,b}" and, where the block
 * changes shape, "layer<L>.<B>.downsample.{w,b}"; "fc.w" [features][classes]
 * and "fc.b" [classes].
 *
 * Usage (a context and a team per concurrent caller; the model is shared
 * read-only):
 *     eng__cnn *cnn;  eng__cnn_init(&cnn, &file, err, sizeof err);
 *     eng__cnn_ctx *ctx;  eng__cnn_ctx_init(cnn, 32, eng__team_size(team), &ctx, err, sizeof err);
 *     eng__image_load(path, eng__cnn_image_spec(cnn), images + i * eng__cnn_input_floats(cnn), ...);
 *     eng__cnn_forward(ctx, team, images, n, logits);
 * Every layer is split among the team's members (see conv.h), with the GEMM
 * of kernels/sgemm.h on weights packed once by eng__cnn_init. Results for an
 * image never depend on the rest of its batch nor on the team's size: each
 * output element is summed in the same order whoever computes it. */
#ifndef ENG_CNN_H
#define ENG_CNN_H

#include <stddef.h>

#include "engine.h"
#include "format.h"
#include "image.h"
#include "team.h"

typedef struct eng__cnn eng__cnn;
typedef struct eng__cnn_ctx eng__cnn_ctx;

/* Binds the tensors of f, which must stay open (mapped) while cnn lives, and
 * packs the conv and fc weights for the GEMM. ENG_ERR_FORMAT for bad metadata or missing/mis-shaped tensors. */
eng_status eng__cnn_init(eng__cnn **out, const eng__file *f, char *err, size_t errlen);
void eng__cnn_free(eng__cnn *cnn);   /* NULL is fine */

int eng__cnn_num_classes(const eng__cnn *cnn);
const char *eng__cnn_label(const eng__cnn *cnn, int i);   /* NULL: out of range or no labels */
const char *eng__cnn_arch(const eng__cnn *cnn);
const eng__image_spec *eng__cnn_image_spec(const eng__cnn *cnn);
/* Floats per input image: 3 x crop x crop. */
size_t eng__cnn_input_floats(const eng__cnn *cnn);

/* Scratch for batches of up to max_batch images (1..4096) on teams of up to
 * members members (1..1024), allocated once. A larger team computes the same
 * results, its extra members idle in the layers that need scratch. */
eng_status eng__cnn_ctx_init(const eng__cnn *cnn, int max_batch, int members,
                             eng__cnn_ctx **out, char *err, size_t errlen);
void eng__cnn_ctx_free(eng__cnn_ctx *ctx);   /* NULL is fine */

/* logits[n][num_classes] for images[n][3][crop][crop] (NCHW, normalised as
 * eng__image_preprocess writes them); any n >= 0, run max_batch at a time on
 * every member of team. Call it from outside the team's runs. */
void eng__cnn_forward(eng__cnn_ctx *ctx, eng__team *team, const float *images, int n,
                      float *logits);

#endif
