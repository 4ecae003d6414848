/* kind.c: the one registration list of model kinds (kind.h). */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

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

int eng__meta_int(const cJSON *o, const char *key, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
        v->valuedouble != (int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

int eng__meta_floats3(const cJSON *o, const char *key, float *out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3)
        return 0;
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(v))
            return 0;
        out[i] = (float)v->valuedouble;
    }
    return 1;
}
