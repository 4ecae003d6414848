/* pickle.h: a restricted unpickler for the data.pkl of a PyTorch checkpoint.
 * It is not a general unpickler: it knows only the opcodes torch.save emits
 * for a state dict (protocols 2 to 4) and only a whitelist of globals
 * (OrderedDict, the tensor/parameter rebuild functions, storage classes and
 * dtypes), and evaluates those calls itself. Anything else is rejected with a
 * one-line error naming the opcode or global. The stack, mark stack and memo
 * are bounded and nothing recurses, so hostile input cannot crash it. */
#ifndef ENG_PICKLE_H
#define ENG_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "source.h"

#define PK_MAX_DIMS 8

typedef enum {
    PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT,
    PK_GLOBAL, PK_STORAGE, PK_TENSOR
} pk_kind;

/* What a whitelisted global is. */
typedef enum {
    PK_G_ORDERED_DICT, PK_G_REBUILD_TENSOR_V2, PK_G_REBUILD_PARAMETER,
    PK_G_TYPED_STORAGE, PK_G_UNTYPED_STORAGE, PK_G_DTYPE
} pk_global;

typedef struct pk_value pk_value;
struct pk_value {
    pk_kind kind;
    union {
        int64_t i;                                    /* PK_BOOL, PK_INT */
        double f;                                     /* PK_FLOAT */
        struct { char *s; size_t len; } str;          /* PK_STR, NUL-terminated */
        struct { pk_value **v; size_t n, cap; } seq;  /* PK_TUPLE, PK_LIST */
        struct { pk_value **k, **v; size_t n, cap; } dict; /* PK_DICT, in insertion order */
        struct { pk_global what; src_dtype dtype; } global;
        /* A persistent-id storage: bytes of zip entry "<prefix>/data/<key>".
         * An UntypedStorage counts bytes (dtype SRC_U8). */
        struct { src_dtype dtype; const char *key; int64_t numel; } storage;
        struct {
            const pk_value *storage;
            int64_t offset; /* in elements */
            int ndim;
            int64_t shape[PK_MAX_DIMS], stride[PK_MAX_DIMS];
        } tensor;
    } u;
};

/* Owns every value made while unpickling; freed all at once. */
typedef struct {
    pk_value **all;
    size_t n, cap;
} pk_heap;

/* The memory a checkpoint file of file_size bytes may make its pickle
 * build: a floor for small files plus a share of every byte, at most 2 GiB.
 * A value costs about 170 bytes (pk_value and its heap slot) and an honest
 * pickle spends at least two bytes on each (an opcode and its argument or an
 * APPEND/SETITEM), so 128 bytes per file byte covers even a stored pickle
 * of nothing but tiny values, while a deflated pickle (up to 1032 times its
 * compressed size) cannot turn a 45 KB file into gigabytes of objects. */
#define PK_BUDGET_BASE (8ull << 20)
#define PK_BUDGET_PER_BYTE 128ull
#define PK_BUDGET_MAX (2ull << 30)
size_t pk_budget(uint64_t file_size);

/* Runs the pickle in buf[0..len) and returns the object STOP leaves in
 * *result, owned by heap. Objects (values, strings, containers, stack and
 * memo) are counted as they are made; a pickle that would make more than
 * budget bytes of them is refused (ENG_ERR_FORMAT) as soon as it does. On
 * failure returns ENG_ERR_FORMAT,
 * ENG_ERR_UNSUPPORTED or ENG_ERR_NOMEM with a one-line reason in err; heap
 * must be freed either way. */
eng_status pk_load(const uint8_t *buf, size_t len, size_t budget, pk_heap *heap,
                   const pk_value **result, char *err, size_t errlen);

void pk_heap_free(pk_heap *heap);

/* The element size of a dtype in bytes. */
size_t pk_dtype_size(src_dtype dt);

#endif
