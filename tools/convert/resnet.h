/* resnet.h: torchvision ResNet checkpoints (state dicts saved with
 * torch.save) to .eng files for src/vision/cnn.c. */
#ifndef CV_RESNET_H
#define CV_RESNET_H

#include <stddef.h>

#include "engine.h"
#include "source.h"

/* `convert --arch ARCH --labels classes.txt weights.pth OUT`. arch is
 * resnet18, resnet34, resnet50, resnet101 or resnet152 and must match the
 * checkpoint; labels_path (one class name a line, as many as the classifier
 * has outputs) may be NULL. Returns ENG_OK or an error with a one-line
 * reason in err; on failure nothing is left at out. */
eng_status convert_resnet(const char *arch, const char *labels_path, const char *weights,
                          const char *out, char *err, size_t errlen);

/* The same from tensors already in memory (torchvision names, any depth and
 * width: the structure is read from the tensors). arch NULL skips the check
 * against the named architecture and records "resnet"; labels may be NULL. */
eng_status convert_resnet_tensors(const src_tensors *s, const char *arch,
                                  const char *const *labels, int n_labels, const char *out,
                                  char *err, size_t errlen);

#endif
