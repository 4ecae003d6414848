/* pickle.c: the restricted pickle VM of pickle.h. It keeps a value stack, a
 * mark stack and a memo, all bounded; every value it makes is recorded in the
 * heap so that memo sharing needs no reference counts and freeing is one flat
 * loop (deeply nested input cannot overflow the C stack). */
#include "pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds: a state dict of thousands of tensors needs a few hundred thousand
 * stack slots and memo entries at most; nesting is a handful of levels. */
#define MAX_STACK (1u << 22)
#define MAX_MARKS 4096
#define MAX_MEMO (1u << 24)

typedef struct {
    const uint8_t *buf;
    size_t len, pos, op_pos;
    pk_heap *heap;
    pk_value **stack;
    size_t sp, stack_cap;
    size_t marks[MAX_MARKS];
    size_t nmarks;
    pk_value **memo;
    size_t memo_cap, memo_count; /* slots allocated, slots filled */
    size_t used, budget;         /* bytes of objects made, and the most allowed */
    int over_budget;             /* a NULL from new_value meant the budget, not malloc */
    char *err;
    size_t errlen;
} vm;

/* Names of every opcode up to protocol 5, for error messages. */
static const char *opcode_name(uint8_t op)
{
    static const struct { uint8_t op; const char *name; } names[] = {
        {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"},
        {'F', "FLOAT"}, {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"},
        {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"}, {'Q', "BINPERSID"}, {'R', "REDUCE"},
        {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"},
        {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
        {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"},
        {'j', "LONG_BINGET"}, {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"},
        {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {'s', "SETITEM"}, {'t', "TUPLE"},
        {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {0x80, "PROTO"},
        {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"},
        {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"},
        {0x8a, "LONG1"}, {0x8b, "LONG4"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"},
        {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"},
        {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
        {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"},
        {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].op == op)
            return names[i].name;
    return "unknown";
}

__attribute__((format(printf, 3, 4)))
static eng_status fail(vm *m, eng_status s, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(m->err, m->errlen, "pickle: %s (at byte %zu)", msg, m->op_pos);
    return s;
}

/* Counts n more bytes against the budget (pk_load); 0 when they do not fit. */
static int charge(vm *m, size_t n)
{
    if (n > m->budget - m->used) {
        m->over_budget = 1;
        return 0;
    }
    m->used += n;
    return 1;
}

static pk_value *new_value(vm *m, pk_kind kind)
{
    pk_heap *h = m->heap;
    if (!charge(m, sizeof(pk_value) + sizeof(pk_value *)))
        return NULL;
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 256;
        pk_value **all = realloc(h->all, cap * sizeof *all);
        if (!all)
            return NULL;
        h->all = all;
        h->cap = cap;
    }
    pk_value *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->kind = kind;
    h->all[h->n++] = v;
    return v;
}

static eng_status oom(vm *m)
{
    if (m->over_budget)
        return fail(m, ENG_ERR_FORMAT, "makes more than %zu bytes of objects, more than a checkpoint "
                    "of this size holds", m->budget);
    return fail(m, ENG_ERR_NOMEM, "out of memory");
}

static eng_status push(vm *m, pk_value *v)
{
    if (!v)
        return oom(m);
    if (m->sp == m->stack_cap) {
        if (m->stack_cap >= MAX_STACK)
            return fail(m, ENG_ERR_FORMAT, "value stack deeper than %u", MAX_STACK);
        size_t cap = m->stack_cap ? 2 * m->stack_cap : 256;
        if (!charge(m, (cap - m->stack_cap) * sizeof *m->stack))
            return oom(m);
        pk_value **st = realloc(m->stack, cap * sizeof *st);
        if (!st)
            return oom(m);
        m->stack = st;
        m->stack_cap = cap;
    }
    m->stack[m->sp++] = v;
    return ENG_OK;
}

/* The lowest stack slot the current opcode may touch: the innermost mark. */
static size_t fence(const vm *m) { return m->nmarks ? m->marks[m->nmarks - 1] : 0; }

static eng_status pop(vm *m, pk_value **v)
{
    *v = NULL;
    if (m->sp <= fence(m))
        return fail(m, ENG_ERR_FORMAT, "stack underflow in %s", opcode_name(m->buf[m->op_pos]));
    *v = m->stack[--m->sp];
    return ENG_OK;
}

static eng_status top(vm *m, pk_value **v)
{
    *v = NULL;
    if (m->sp <= fence(m))
        return fail(m, ENG_ERR_FORMAT, "stack underflow in %s", opcode_name(m->buf[m->op_pos]));
    *v = m->stack[m->sp - 1];
    return ENG_OK;
}

static eng_status pop_mark(vm *m, size_t *at)
{
    if (!m->nmarks)
        return fail(m, ENG_ERR_FORMAT, "%s without a MARK", opcode_name(m->buf[m->op_pos]));
    *at = m->marks[--m->nmarks];
    return ENG_OK;
}

static eng_status take(vm *m, size_t n, const uint8_t **p)
{
    if (n > m->len - m->pos)
        return fail(m, ENG_ERR_FORMAT, "%s argument runs past the end of the pickle", opcode_name(m->buf[m->op_pos]));
    *p = m->buf + m->pos;
    m->pos += n;
    return ENG_OK;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static eng_status seq_add(vm *m, pk_value *seq, pk_value *item)
{
    if (seq->u.seq.n == seq->u.seq.cap) {
        size_t cap = seq->u.seq.cap ? 2 * seq->u.seq.cap : 4;
        if (!charge(m, (cap - seq->u.seq.cap) * sizeof(pk_value *)))
            return oom(m);
        pk_value **v = realloc(seq->u.seq.v, cap * sizeof *v);
        if (!v)
            return oom(m);
        seq->u.seq.v = v;
        seq->u.seq.cap = cap;
    }
    seq->u.seq.v[seq->u.seq.n++] = item;
    return ENG_OK;
}

static eng_status dict_set(vm *m, pk_value *d, pk_value *k, pk_value *v)
{
    if (d->u.dict.n == d->u.dict.cap) {
        size_t cap = d->u.dict.cap ? 2 * d->u.dict.cap : 8;
        if (!charge(m, 2 * (cap - d->u.dict.cap) * sizeof *d->u.dict.k))
            return oom(m);
        pk_value **nk = realloc(d->u.dict.k, cap * sizeof *nk);
        if (!nk)
            return oom(m);
        d->u.dict.k = nk;
        pk_value **nv = realloc(d->u.dict.v, cap * sizeof *nv);
        if (!nv)
            return oom(m);
        d->u.dict.v = nv;
        d->u.dict.cap = cap;
    }
    d->u.dict.k[d->u.dict.n] = k;
    d->u.dict.v[d->u.dict.n++] = v;
    return ENG_OK;
}

/* Pops the items above the innermost mark into a new tuple. */
static eng_status tuple_from(vm *m, size_t from)
{
    pk_value *t = new_value(m, PK_TUPLE);
    if (!t)
        return oom(m);
    for (size_t i = from; i < m->sp; i++) {
        eng_status s = seq_add(m, t, m->stack[i]);
        if (s != ENG_OK)
            return s;   /* out of memory, or over the budget */
    }
    m->sp = from;
    return push(m, t);
}

static eng_status push_str(vm *m, size_t n)
{
    const uint8_t *p;
    eng_status s = take(m, n, &p);
    if (s != ENG_OK)
        return s;
    pk_value *v = new_value(m, PK_STR);
    if (!v || !charge(m, n + 1) || !(v->u.str.s = malloc(n + 1)))
        return oom(m);
    memcpy(v->u.str.s, p, n);
    v->u.str.s[n] = '\0';
    v->u.str.len = n;
    return push(m, v);
}

static eng_status push_int(vm *m, int64_t i)
{
    pk_value *v = new_value(m, PK_INT);
    if (v)
        v->u.i = i;
    return push(m, v);
}

/* The whitelist. Storage classes and dtypes carry the element type. */
static const struct {
    const char *module, *name;
    pk_global what;
    src_dtype dtype;
} allowed[] = {
    {"collections", "OrderedDict", PK_G_ORDERED_DICT, SRC_F32},
    {"torch._utils", "_rebuild_tensor_v2", PK_G_REBUILD_TENSOR_V2, SRC_F32},
    {"torch._utils", "_rebuild_parameter", PK_G_REBUILD_PARAMETER, SRC_F32},
    {"torch", "FloatStorage", PK_G_TYPED_STORAGE, SRC_F32},
    {"torch", "HalfStorage", PK_G_TYPED_STORAGE, SRC_F16},
    {"torch", "BFloat16Storage", PK_G_TYPED_STORAGE, SRC_BF16},
    {"torch", "DoubleStorage", PK_G_TYPED_STORAGE, SRC_F64},
    {"torch", "LongStorage", PK_G_TYPED_STORAGE, SRC_I64},
    {"torch", "IntStorage", PK_G_TYPED_STORAGE, SRC_I32},
    {"torch", "CharStorage", PK_G_TYPED_STORAGE, SRC_I8},
    {"torch", "ByteStorage", PK_G_TYPED_STORAGE, SRC_U8},
    {"torch", "BoolStorage", PK_G_TYPED_STORAGE, SRC_BOOL},
    {"torch", "UntypedStorage", PK_G_UNTYPED_STORAGE, SRC_U8},
    {"torch.storage", "UntypedStorage", PK_G_UNTYPED_STORAGE, SRC_U8},
    {"torch", "float32", PK_G_DTYPE, SRC_F32},
    {"torch", "float", PK_G_DTYPE, SRC_F32},
    {"torch", "float16", PK_G_DTYPE, SRC_F16},
    {"torch", "half", PK_G_DTYPE, SRC_F16},
    {"torch", "bfloat16", PK_G_DTYPE, SRC_BF16},
    {"torch", "float64", PK_G_DTYPE, SRC_F64},
    {"torch", "double", PK_G_DTYPE, SRC_F64},
    {"torch", "int64", PK_G_DTYPE, SRC_I64},
    {"torch", "long", PK_G_DTYPE, SRC_I64},
    {"torch", "int32", PK_G_DTYPE, SRC_I32},
    {"torch", "int", PK_G_DTYPE, SRC_I32},
    {"torch", "int8", PK_G_DTYPE, SRC_I8},
    {"torch", "uint8", PK_G_DTYPE, SRC_U8},
    {"torch", "bool", PK_G_DTYPE, SRC_BOOL},
};

static int str_is(const pk_value *v, const char *s)
{
    return v->kind == PK_STR && strlen(s) == v->u.str.len && memcmp(v->u.str.s, s, v->u.str.len) == 0;
}

static eng_status push_global(vm *m, const pk_value *module, const pk_value *name)
{
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (str_is(module, allowed[i].module) && str_is(name, allowed[i].name)) {
            pk_value *g = new_value(m, PK_GLOBAL);
            if (g) {
                g->u.global.what = allowed[i].what;
                g->u.global.dtype = allowed[i].dtype;
            }
            return push(m, g);
        }
    }
    /* Print at most 64 bytes of each, with anything unprintable as '?'. */
    char mod[65], nam[65];
    const pk_value *src[2] = {module, name};
    char *dst[2] = {mod, nam};
    for (int k = 0; k < 2; k++) {
        size_t n = src[k]->kind == PK_STR ? src[k]->u.str.len : 0;
        n = n > 64 ? 64 : n;
        for (size_t i = 0; i < n; i++) {
            char c = src[k]->u.str.s[i];
            dst[k][i] = c >= 0x20 && c < 0x7f ? c : '?';
        }
        dst[k][n] = '\0';
    }
    return fail(m, ENG_ERR_UNSUPPORTED, "forbidden global %s.%s: only tensor state dicts are accepted", mod, nam);
}

/* GLOBAL's argument: "module\nname\n". */
static eng_status op_global(vm *m)
{
    pk_value *parts[2];
    for (int k = 0; k < 2; k++) {
        const uint8_t *nl = memchr(m->buf + m->pos, '\n', m->len - m->pos);
        if (!nl)
            return fail(m, ENG_ERR_FORMAT, "GLOBAL without a newline-terminated name");
        eng_status s = push_str(m, (size_t)(nl - (m->buf + m->pos)));
        if (s != ENG_OK)
            return s;
        m->pos++;
        if ((s = pop(m, &parts[k])) != ENG_OK)
            return s;
    }
    return push_global(m, parts[0], parts[1]);
}

static eng_status int_tuple(vm *m, const pk_value *t, const char *what, int64_t *out, int *n)
{
    if (t->kind != PK_TUPLE)
        return fail(m, ENG_ERR_FORMAT, "tensor %s is not a tuple", what);
    if (t->u.seq.n > PK_MAX_DIMS)
        return fail(m, ENG_ERR_UNSUPPORTED, "tensor has %zu dimensions; at most %d are supported", t->u.seq.n, PK_MAX_DIMS);
    for (size_t i = 0; i < t->u.seq.n; i++) {
        if (t->u.seq.v[i]->kind != PK_INT || t->u.seq.v[i]->u.i < 0)
            return fail(m, ENG_ERR_FORMAT, "tensor %s holds something other than a non-negative int", what);
        out[i] = t->u.seq.v[i]->u.i;
    }
    *n = (int)t->u.seq.n;
    return ENG_OK;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]): only the first four matter here. */
static eng_status rebuild_tensor(vm *m, const pk_value *args)
{
    if (args->u.seq.n != 6 && args->u.seq.n != 7)
        return fail(m, ENG_ERR_FORMAT, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", args->u.seq.n);
    pk_value *const *a = args->u.seq.v;
    if (a[0]->kind != PK_STORAGE)
        return fail(m, ENG_ERR_FORMAT, "_rebuild_tensor_v2 called without a storage");
    if (a[1]->kind != PK_INT || a[1]->u.i < 0)
        return fail(m, ENG_ERR_FORMAT, "_rebuild_tensor_v2 storage offset is not a non-negative int");
    pk_value *t = new_value(m, PK_TENSOR);
    if (!t)
        return oom(m);
    t->u.tensor.storage = a[0];
    t->u.tensor.offset = a[1]->u.i;
    int nstride;
    eng_status s = int_tuple(m, a[2], "size", t->u.tensor.shape, &t->u.tensor.ndim);
    if (s == ENG_OK)
        s = int_tuple(m, a[3], "stride", t->u.tensor.stride, &nstride);
    if (s != ENG_OK)
        return s;
    if (nstride != t->u.tensor.ndim)
        return fail(m, ENG_ERR_FORMAT, "tensor has %d sizes but %d strides", t->u.tensor.ndim, nstride);
    return push(m, t);
}

static eng_status op_reduce(vm *m)
{
    pk_value *args, *fn;
    eng_status s = pop(m, &args);
    if (s == ENG_OK)
        s = pop(m, &fn);
    if (s != ENG_OK)
        return s;
    if (fn->kind != PK_GLOBAL || args->kind != PK_TUPLE)
        return fail(m, ENG_ERR_FORMAT, "REDUCE needs a whitelisted global and an argument tuple");
    switch (fn->u.global.what) {
    case PK_G_ORDERED_DICT:
        if (args->u.seq.n != 0)
            return fail(m, ENG_ERR_UNSUPPORTED, "OrderedDict called with arguments");
        return push(m, new_value(m, PK_DICT));
    case PK_G_REBUILD_TENSOR_V2:
        return rebuild_tensor(m, args);
    case PK_G_REBUILD_PARAMETER:
        if (args->u.seq.n != 3 || args->u.seq.v[0]->kind != PK_TENSOR)
            return fail(m, ENG_ERR_FORMAT, "_rebuild_parameter needs (tensor, requires_grad, hooks)");
        return push(m, args->u.seq.v[0]);
    default:
        return fail(m, ENG_ERR_UNSUPPORTED, "a storage class or dtype cannot be called");
    }
}

/* BINPERSID: ('storage', storage class or dtype, key, location, numel). */
static eng_status op_persid(vm *m)
{
    pk_value *pid;
    eng_status s = pop(m, &pid);
    if (s != ENG_OK)
        return s;
    if (pid->kind != PK_TUPLE || pid->u.seq.n != 5)
        return fail(m, ENG_ERR_FORMAT, "persistent id is not a 5-tuple");
    pk_value *const *a = pid->u.seq.v;
    if (!str_is(a[0], "storage") || a[1]->kind != PK_GLOBAL ||
        a[1]->u.global.what < PK_G_TYPED_STORAGE || a[2]->kind != PK_STR || a[2]->u.str.len == 0 ||
        strlen(a[2]->u.str.s) != a[2]->u.str.len || a[4]->kind != PK_INT || a[4]->u.i < 0)
        return fail(m, ENG_ERR_FORMAT, "persistent id is not ('storage', type, key, location, numel)");
    pk_value *st = new_value(m, PK_STORAGE);
    if (!st)
        return oom(m);
    st->u.storage.dtype = a[1]->u.global.dtype;
    st->u.storage.key = a[2]->u.str.s;
    st->u.storage.numel = a[4]->u.i;
    return push(m, st);
}

static eng_status memo_put(vm *m, uint64_t idx)
{
    /* A pickler numbers memo entries from 0 as it goes, so no honest index
     * exceeds the pickle's length. */
    if (idx >= MAX_MEMO || idx >= m->len)
        return fail(m, ENG_ERR_FORMAT, "memo index %llu out of range", (unsigned long long)idx);
    if (idx >= m->memo_cap) {
        size_t cap = m->memo_cap ? m->memo_cap : 256;
        while (cap <= idx)
            cap *= 2;
        if (!charge(m, (cap - m->memo_cap) * sizeof *m->memo))
            return oom(m);
        pk_value **mm = realloc(m->memo, cap * sizeof *mm);
        if (!mm)
            return oom(m);
        memset(mm + m->memo_cap, 0, (cap - m->memo_cap) * sizeof *mm);
        m->memo = mm;
        m->memo_cap = cap;
    }
    m->memo_count += !m->memo[idx];
    return top(m, &m->memo[idx]);
}

static eng_status memo_get(vm *m, uint64_t idx)
{
    if (idx >= m->memo_cap || !m->memo[idx])
        return fail(m, ENG_ERR_FORMAT, "memo index %llu was never stored", (unsigned long long)idx);
    return push(m, m->memo[idx]);
}

/* SETITEM(S)/APPEND(S): the items from index `from` go into the container
 * just below them. */
static eng_status fill(vm *m, size_t from, int is_dict)
{
    if (from == 0 || from - 1 < fence(m))
        return fail(m, ENG_ERR_FORMAT, "%s has no container to fill", opcode_name(m->buf[m->op_pos]));
    pk_value *c = m->stack[from - 1];
    if (is_dict) {
        if (c->kind != PK_DICT || (m->sp - from) % 2)
            return fail(m, ENG_ERR_FORMAT, "%s needs a dict and key/value pairs", opcode_name(m->buf[m->op_pos]));
        for (size_t i = from; i < m->sp; i += 2) {
            eng_status s = dict_set(m, c, m->stack[i], m->stack[i + 1]);
            if (s != ENG_OK)
                return s;
        }
    } else {
        if (c->kind != PK_LIST)
            return fail(m, ENG_ERR_FORMAT, "%s needs a list", opcode_name(m->buf[m->op_pos]));
        for (size_t i = from; i < m->sp; i++) {
            eng_status s = seq_add(m, c, m->stack[i]);
            if (s != ENG_OK)
                return s;
        }
    }
    m->sp = from;
    return ENG_OK;
}

static eng_status step(vm *m, int *done)
{
    const uint8_t *p;
    eng_status s;
    size_t at;
    pk_value *v;
    m->op_pos = m->pos;
    if (m->pos >= m->len)
        return fail(m, ENG_ERR_FORMAT, "pickle ends without STOP");
    uint8_t op = m->buf[m->pos++];
    switch (op) {
    case 0x80: /* PROTO */
        if ((s = take(m, 1, &p)) != ENG_OK)
            return s;
        return p[0] <= 5 ? ENG_OK : fail(m, ENG_ERR_UNSUPPORTED, "pickle protocol %u", p[0]);
    case 0x95: /* FRAME: framing is only a hint to buffered readers. */
        return take(m, 8, &p);
    case '.':
        if (m->sp == 0 || m->nmarks)
            return fail(m, ENG_ERR_FORMAT, "STOP with an empty stack or an open MARK");
        *done = 1;
        return ENG_OK;
    case 'c':
        return op_global(m);
    case 0x93: { /* STACK_GLOBAL */
        pk_value *mod, *name;
        if ((s = pop(m, &name)) != ENG_OK || (s = pop(m, &mod)) != ENG_OK)
            return s;
        if (mod->kind != PK_STR || name->kind != PK_STR)
            return fail(m, ENG_ERR_FORMAT, "STACK_GLOBAL needs two strings");
        return push_global(m, mod, name);
    }
    case 'q':
        return (s = take(m, 1, &p)) != ENG_OK ? s : memo_put(m, p[0]);
    case 'r':
        return (s = take(m, 4, &p)) != ENG_OK ? s : memo_put(m, le(p, 4));
    case 0x94: /* MEMOIZE: the next index is the memo's size, as in Python. */
        return memo_put(m, m->memo_count);
    case 'h':
        return (s = take(m, 1, &p)) != ENG_OK ? s : memo_get(m, p[0]);
    case 'j':
        return (s = take(m, 4, &p)) != ENG_OK ? s : memo_get(m, le(p, 4));
    case '}':
        return push(m, new_value(m, PK_DICT));
    case ']':
        return push(m, new_value(m, PK_LIST));
    case ')':
        return push(m, new_value(m, PK_TUPLE));
    case '(':
        if (m->nmarks == MAX_MARKS)
            return fail(m, ENG_ERR_FORMAT, "more than %d nested MARKs", MAX_MARKS);
        m->marks[m->nmarks++] = m->sp;
        return ENG_OK;
    case 't':
        return (s = pop_mark(m, &at)) != ENG_OK ? s : tuple_from(m, at);
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
        size_t n = (size_t)(op - 0x84);
        if (m->sp < fence(m) + n)
            return fail(m, ENG_ERR_FORMAT, "stack underflow in %s", opcode_name(op));
        return tuple_from(m, m->sp - n);
    }
    case 's': case 'a':
        if (m->sp < fence(m) + 2 - (op == 'a'))
            return fail(m, ENG_ERR_FORMAT, "stack underflow in %s", opcode_name(op));
        return fill(m, m->sp - (op == 's' ? 2 : 1), op == 's');
    case 'u': case 'e':
        return (s = pop_mark(m, &at)) != ENG_OK ? s : fill(m, at, op == 'u');
    case 'J':
        return (s = take(m, 4, &p)) != ENG_OK ? s : push_int(m, (int32_t)(uint32_t)le(p, 4));
    case 'K':
        return (s = take(m, 1, &p)) != ENG_OK ? s : push_int(m, p[0]);
    case 'M':
        return (s = take(m, 2, &p)) != ENG_OK ? s : push_int(m, (int64_t)le(p, 2));
    case 0x8a: { /* LONG1: little-endian two's complement of n bytes */
        if ((s = take(m, 1, &p)) != ENG_OK)
            return s;
        size_t n = p[0];
        if (n > 8)
            return fail(m, ENG_ERR_UNSUPPORTED, "LONG1 of %zu bytes does not fit 64 bits", n);
        if ((s = take(m, n, &p)) != ENG_OK)
            return s;
        uint64_t u = n ? le(p, (int)n) : 0;
        if (n && n < 8 && (p[n - 1] & 0x80))
            u |= ~0ull << (8 * n);
        return push_int(m, (int64_t)u);
    }
    case 'G': { /* BINFLOAT: big-endian double */
        if ((s = take(m, 8, &p)) != ENG_OK)
            return s;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | p[i];
        v = new_value(m, PK_FLOAT);
        if (v)
            memcpy(&v->u.f, &u, sizeof u);
        return push(m, v);
    }
    case 'X':
        return (s = take(m, 4, &p)) != ENG_OK ? s : push_str(m, le(p, 4));
    case 0x8c: case 'U': /* SHORT_BINUNICODE, SHORT_BINSTRING */
        return (s = take(m, 1, &p)) != ENG_OK ? s : push_str(m, p[0]);
    case 'T': /* BINSTRING: signed 32-bit length */
        if ((s = take(m, 4, &p)) != ENG_OK)
            return s;
        if ((int32_t)(uint32_t)le(p, 4) < 0)
            return fail(m, ENG_ERR_FORMAT, "BINSTRING with a negative length");
        return push_str(m, le(p, 4));
    case 0x8d: { /* BINUNICODE8 */
        if ((s = take(m, 8, &p)) != ENG_OK)
            return s;
        uint64_t n = le(p, 8);
        if (n > m->len - m->pos)
            return fail(m, ENG_ERR_FORMAT, "BINUNICODE8 argument runs past the end of the pickle");
        return push_str(m, (size_t)n);
    }
    case 'N':
        return push(m, new_value(m, PK_NONE));
    case 0x88: case 0x89:
        if ((v = new_value(m, PK_BOOL)))
            v->u.i = op == 0x88;
        return push(m, v);
    case 'R':
        return op_reduce(m);
    case 'b': { /* BUILD: the state (e.g. a state dict's _metadata) is not needed. */
        pk_value *state;
        if ((s = pop(m, &state)) != ENG_OK || (s = top(m, &v)) != ENG_OK)
            return s;
        if (v->kind != PK_DICT && v->kind != PK_TENSOR)
            return fail(m, ENG_ERR_UNSUPPORTED, "BUILD on something other than a dict or tensor");
        return ENG_OK;
    }
    case 'Q':
        return op_persid(m);
    default:
        return fail(m, ENG_ERR_UNSUPPORTED, "unsupported opcode %s (0x%02x)", opcode_name(op), op);
    }
}

size_t pk_budget(uint64_t file_size)
{
    uint64_t b = PK_BUDGET_BASE + (file_size < PK_BUDGET_MAX / PK_BUDGET_PER_BYTE
                                       ? file_size * PK_BUDGET_PER_BYTE : PK_BUDGET_MAX);
    return (size_t)(b < PK_BUDGET_MAX ? b : PK_BUDGET_MAX);
}

eng_status pk_load(const uint8_t *buf, size_t len, size_t budget, pk_heap *heap,
                   const pk_value **result, char *err, size_t errlen)
{
    vm *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "pickle: out of memory");
        return ENG_ERR_NOMEM;
    }
    m->buf = buf;
    m->len = len;
    m->budget = budget;
    m->heap = heap;
    m->err = err;
    m->errlen = errlen;
    *result = NULL;
    int done = 0;
    eng_status s = ENG_OK;
    while (s == ENG_OK && !done)
        s = step(m, &done);
    if (s == ENG_OK)
        *result = m->stack[m->sp - 1];
    free(m->stack);
    free(m->memo);
    free(m);
    return s;
}

void pk_heap_free(pk_heap *heap)
{
    for (size_t i = 0; i < heap->n; i++) {
        pk_value *v = heap->all[i];
        if (v->kind == PK_STR)
            free(v->u.str.s);
        else if (v->kind == PK_TUPLE || v->kind == PK_LIST)
            free(v->u.seq.v);
        else if (v->kind == PK_DICT) {
            free(v->u.dict.k);
            free(v->u.dict.v);
        }
        free(v);
    }
    free(heap->all);
    memset(heap, 0, sizeof *heap);
}

size_t pk_dtype_size(src_dtype dt)
{
    switch (dt) {
    case SRC_F64: case SRC_I64: return 8;
    case SRC_F32: case SRC_I32: return 4;
    case SRC_F16: case SRC_BF16: return 2;
    default: return 1;
    }
}
