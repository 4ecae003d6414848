/* zeroshot.c: CLIP zero-shot classification and its class-embedding cache. */
#include <stdlib.h>

#include "vit.h"

struct eng__zs_entry {
    eng__zs_entry *next;
};

void eng__zs_free(eng__vit_model *m)
{
    while (m->zs_head) {
        eng__zs_entry *e = m->zs_head;
        m->zs_head = e->next;
        free(e);
    }
}
