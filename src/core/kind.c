/* kind.c: the one registration list of model kinds (kind.h). */
#include <stdio.h>
#include <string.h>

#include "kind.h"

extern const eng__kind eng__kind_text;   /* src/text/text.c */
extern const eng__kind eng__kind_cnn;    /* src/vision/vision.c */
extern const eng__kind eng__kind_vit;    /* src/vit/vit.c */

static const eng__kind *const kinds[] = {&eng__kind_text, &eng__kind_cnn, &eng__kind_vit};

const eng__kind *eng__kind_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i]->name, name))
            return kinds[i];
    return NULL;
}

void eng__kind_names(char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && at < len; i++) {
        int k = snprintf(buf + at, len - at, "%s%s", i ? ", " : "", kinds[i]->name);
        at += k > 0 ? (size_t)k : 0;
    }
}
