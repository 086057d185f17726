/* The merge loop of BPE encoding in C: the twin of `Merger` in pairmerge.py, tested equal to it.

   A word is a linked list of symbols (by their position in the word). A min-heap holds the candidate merges as
   (rank << 32 | position), so the pair of lowest rank comes out first, the leftmost on ties. `rank_at[p]` is the
   rank of the pair that starts at position p now (-1: none, or p was merged away); a heap entry whose rank is no
   longer `rank_at[p]` is stale and skipped. Each merge pushes at most two entries: O(n log n) per word.

   Pair ranks live in an open-addressing hash table keyed by (a << 32 | b). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define EMPTY UINT64_MAX /* no id reaches 2^31, so no pair key is all ones */
#define STACK_SYMBOLS 128

typedef struct {
    uint64_t key; /* pair (a << 32 | b), EMPTY for a free slot */
    int32_t rank;
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask;      /* table size - 1 (a power of two) */
    int shift;          /* 64 - log2(table size) */
    int32_t *merged;    /* rank -> id of the merged symbol */
    Py_ssize_t n_merged;
    int32_t byte_ids[256];
    int has_byte_ids;
    PyObject *cache;    /* word (str) -> tuple of ids */
    Py_ssize_t cache_size;
} Merger;

static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static inline uint64_t slot_of(const Merger *m, uint64_t key) { return (key * 0x9E3779B97F4A7C15ull) >> m->shift; }

static inline int32_t rank_of(const Merger *m, int32_t a, int32_t b) {
    uint64_t key = pair_key(a, b);
    for (uint64_t i = slot_of(m, key);; i = (i + 1) & m->mask) {
        if (m->slots[i].key == key) return m->slots[i].rank;
        if (m->slots[i].key == EMPTY) return -1;
    }
}

static void heap_push(uint64_t *heap, Py_ssize_t *size, uint64_t item) {
    Py_ssize_t i = (*size)++;
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (heap[parent] <= item) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = item;
}

static uint64_t heap_pop(uint64_t *heap, Py_ssize_t *size) {
    uint64_t top = heap[0], last = heap[--(*size)];
    Py_ssize_t i = 0, n = *size;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap[child + 1] < heap[child]) child++;
        if (last <= heap[child]) break;
        heap[i] = heap[child];
        i = child;
    }
    if (n > 0) heap[i] = last;
    return top;
}

/* Apply the merges to ids[0..n) in place; returns the new length. `work` holds 3n int32 and 2n uint64. */
static Py_ssize_t merge_word(const Merger *m, int32_t *ids, Py_ssize_t n, void *work) {
    if (n < 2) return n;
    uint64_t *heap = (uint64_t *)work;
    int32_t *next = (int32_t *)(heap + 2 * n), *prev = next + n, *rank_at = prev + n;
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        next[i] = (int32_t)(i + 1);
        prev[i] = (int32_t)(i - 1);
        rank_at[i] = i + 1 < n ? rank_of(m, ids[i], ids[i + 1]) : -1;
        if (rank_at[i] >= 0) heap_push(heap, &size, ((uint64_t)rank_at[i] << 32) | (uint64_t)i);
    }
    while (size > 0) {
        uint64_t top = heap_pop(heap, &size);
        int32_t rank = (int32_t)(top >> 32), i = (int32_t)(top & 0xFFFFFFFFu);
        if (rank_at[i] != rank) continue;
        int32_t j = next[i], k = next[j];
        ids[i] = m->merged[rank];
        rank_at[j] = -1;
        next[i] = k;
        if (k < n) prev[k] = i;
        rank_at[i] = k < n ? rank_of(m, ids[i], ids[k]) : -1;
        if (rank_at[i] >= 0) heap_push(heap, &size, ((uint64_t)rank_at[i] << 32) | (uint64_t)i);
        int32_t h = prev[i];
        if (h >= 0) {
            rank_at[h] = rank_of(m, ids[h], ids[i]);
            if (rank_at[h] >= 0) heap_push(heap, &size, ((uint64_t)rank_at[h] << 32) | (uint64_t)h);
        }
    }
    Py_ssize_t out = 0;
    for (int32_t i = 0; i < n; i = next[i]) ids[out++] = ids[i];
    return out;
}

/* Heap, links and ids for a word of n symbols: on the stack when small, else allocated (free with release_work). */
typedef struct {
    uint64_t stack[STACK_SYMBOLS * 4];
    void *heap_alloc;
} Work;

static void *claim_work(Work *w, Py_ssize_t n, int32_t **ids) {
    if (n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a word of 2^31 symbols or more is too long to encode");
        return NULL;
    }
    size_t bytes = (size_t)n * (2 * sizeof(uint64_t) + 4 * sizeof(int32_t));
    void *mem = bytes <= sizeof(w->stack) ? (void *)w->stack : (w->heap_alloc = PyMem_Malloc(bytes));
    if (mem == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *ids = (int32_t *)((uint64_t *)mem + 2 * n) + 3 * n;
    return mem;
}

static void release_work(Work *w) {
    PyMem_Free(w->heap_alloc);
    w->heap_alloc = NULL;
}

static int as_id(PyObject *obj, const char *what, int32_t *out) {
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s %ld is out of range (0 to 2^31 - 1)", what, v);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

/* Free the tables; a Merger without them (never initialised, or its __init__ failed) refuses to encode. */
static void clear_tables(Merger *self) {
    PyMem_Free(self->slots);
    PyMem_Free(self->merged);
    self->slots = NULL;
    self->merged = NULL;
    self->has_byte_ids = 0;
    Py_CLEAR(self->cache);
}

static int read_ids(PyObject *obj, const char *what, int32_t *out, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (as_id(PySequence_Fast_GET_ITEM(obj, i), what, &out[i]) < 0) return -1;
    return 0;
}

static int read_ranks(Merger *self, PyObject *ranks) {
    uint64_t size = 16;
    int bits = 4;
    while (size < 2 * (uint64_t)PyDict_GET_SIZE(ranks)) {
        size <<= 1;
        bits++;
    }
    self->slots = PyMem_Malloc(size * sizeof(Slot));
    if (self->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (uint64_t i = 0; i < size; i++) self->slots[i].key = EMPTY;
    self->mask = size - 1;
    self->shift = 64 - bits;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(ranks, &pos, &key, &value)) {
        int32_t a, b, rank;
        if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2) {
            PyErr_SetString(PyExc_TypeError, "ranks must map (a, b) pairs of ids to ranks");
            return -1;
        }
        if (as_id(PyTuple_GET_ITEM(key, 0), "pair id", &a) < 0 || as_id(PyTuple_GET_ITEM(key, 1), "pair id", &b) < 0 ||
            as_id(value, "rank", &rank) < 0)
            return -1;
        if (rank >= self->n_merged) {
            PyErr_Format(PyExc_ValueError, "rank %d has no merged id (merged holds %zd)", rank, self->n_merged);
            return -1;
        }
        uint64_t k = pair_key(a, b), i = slot_of(self, k);
        while (self->slots[i].key != EMPTY && self->slots[i].key != k) i = (i + 1) & self->mask;
        self->slots[i].key = k;
        self->slots[i].rank = rank;
    }
    return 0;
}

static int Merger_init(Merger *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"ranks", "merged", "byte_ids", "cache_size", NULL};
    PyObject *ranks, *merged, *byte_ids = Py_None, *merged_seq = NULL, *byte_seq = NULL;
    Py_ssize_t cache_size = 0;
    clear_tables(self);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|On", kwlist, &PyDict_Type, &ranks, &merged, &byte_ids, &cache_size)) return -1;
    if ((merged_seq = PySequence_Fast(merged, "merged must be a sequence of ids")) == NULL) goto fail;
    self->n_merged = PySequence_Fast_GET_SIZE(merged_seq);
    if ((self->merged = PyMem_Malloc((size_t)(self->n_merged + 1) * sizeof(int32_t))) == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (read_ids(merged_seq, "merged id", self->merged, self->n_merged) < 0 || read_ranks(self, ranks) < 0) goto fail;
    if (byte_ids != Py_None) {
        if ((byte_seq = PySequence_Fast(byte_ids, "byte_ids must be a sequence of 256 ids")) == NULL) goto fail;
        if (PySequence_Fast_GET_SIZE(byte_seq) != 256) {
            PyErr_SetString(PyExc_ValueError, "byte_ids must hold 256 ids, one per byte value");
            goto fail;
        }
        if (read_ids(byte_seq, "byte id", self->byte_ids, 256) < 0) goto fail;
        self->has_byte_ids = 1;
    }
    self->cache_size = cache_size;
    if ((self->cache = PyDict_New()) == NULL) goto fail;
    Py_DECREF(merged_seq);
    Py_XDECREF(byte_seq);
    return 0;
fail:
    Py_XDECREF(merged_seq);
    Py_XDECREF(byte_seq);
    clear_tables(self);
    return -1;
}

static void Merger_dealloc(Merger *self) {
    clear_tables(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_ready(Merger *self) {
    if (self->slots != NULL) return 0;
    PyErr_SetString(PyExc_ValueError, "this Merger has no merges: its __init__ was not run or failed");
    return -1;
}

static PyObject *ids_to_list(const int32_t *ids, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (v == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static PyObject *Merger_merge(Merger *self, PyObject *arg) {
    if (check_ready(self) < 0) return NULL;
    PyObject *seq = PySequence_Fast(arg, "merge() takes a sequence of ids");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Work work = {.heap_alloc = NULL};
    int32_t *ids;
    void *mem = claim_work(&work, n, &ids);
    PyObject *result = NULL;
    if (mem != NULL) {
        Py_ssize_t i = 0;
        while (i < n && as_id(PySequence_Fast_GET_ITEM(seq, i), "id", &ids[i]) == 0) i++;
        if (i == n) result = ids_to_list(ids, merge_word(self, ids, n, mem));
    }
    release_work(&work);
    Py_DECREF(seq);
    return result;
}

/* The ids of one word from its UTF-8 bytes, as a new tuple. */
static PyObject *encode_word(Merger *self, PyObject *word) {
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(word, &n);
    if (utf8 == NULL) return NULL;
    Work work = {.heap_alloc = NULL};
    int32_t *ids;
    void *mem = claim_work(&work, n, &ids);
    if (mem == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) ids[i] = self->byte_ids[(unsigned char)utf8[i]];
    n = merge_word(self, ids, n, mem);
    PyObject *tuple = PyTuple_New(n);
    for (Py_ssize_t i = 0; tuple != NULL && i < n; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (v == NULL) Py_CLEAR(tuple);
        else PyTuple_SET_ITEM(tuple, i, v);
    }
    release_work(&work);
    return tuple;
}

static PyObject *Merger_encode_words(Merger *self, PyObject *arg) {
    if (check_ready(self) < 0) return NULL;
    if (!self->has_byte_ids) {
        PyErr_SetString(PyExc_ValueError, "encode_words() needs the byte_ids this Merger was built without");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(arg, "encode_words() takes a sequence of str");
    if (seq == NULL) return NULL;
    PyObject *out = PyList_New(0);
    for (Py_ssize_t w = 0; out != NULL && w < PySequence_Fast_GET_SIZE(seq); w++) {
        PyObject *word = PySequence_Fast_GET_ITEM(seq, w);
        if (!PyUnicode_Check(word)) {
            PyErr_Format(PyExc_TypeError, "encode_words() takes str words, not %.100s", Py_TYPE(word)->tp_name);
            Py_CLEAR(out);
            break;
        }
        PyObject *ids = PyDict_GetItemWithError(self->cache, word);
        if (ids != NULL) {
            Py_INCREF(ids);
        } else if (!PyErr_Occurred() && (ids = encode_word(self, word)) != NULL && self->cache_size > 0) {
            if (PyDict_GET_SIZE(self->cache) >= self->cache_size) PyDict_Clear(self->cache);
            if (PyDict_SetItem(self->cache, word, ids) < 0) Py_CLEAR(ids);
        }
        if (ids == NULL) {
            Py_CLEAR(out);
            break;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(ids); i++) {
            if (PyList_Append(out, PyTuple_GET_ITEM(ids, i)) < 0) {
                Py_CLEAR(out);
                break;
            }
        }
        Py_DECREF(ids);
    }
    Py_DECREF(seq);
    return out;
}

static PyMethodDef Merger_methods[] = {
    {"merge", (PyCFunction)Merger_merge, METH_O, "merge(ids) -> list: apply the merges to one word's symbol ids."},
    {"encode_words", (PyCFunction)Merger_encode_words, METH_O,
     "encode_words(words) -> list: the ids of byte-level words (str), concatenated; each word's ids are cached."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MergerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "nlplab.text._pairmerge.Merger",
    .tp_basicsize = sizeof(Merger),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Merger(ranks, merged, byte_ids=None, cache_size=0): BPE encoding with learned merges (C).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Merger_init,
    .tp_dealloc = (destructor)Merger_dealloc,
    .tp_methods = Merger_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_pairmerge",
    .m_doc = "The BPE merge loop in C (see pairmerge.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__pairmerge(void) {
    if (PyType_Ready(&MergerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&MergerType);
    if (PyModule_AddObject(m, "Merger", (PyObject *)&MergerType) < 0) {
        Py_DECREF(&MergerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
